"""Audit event types of the grants package (``scope:resource:action``, alphabetized).

A family of :class:`idrs.audit.events.AuditEvent`, the one base of every event type.
"""

from __future__ import annotations

from idrs.audit.events import AuditEvent


class GrantEvent(AuditEvent):
    ANON_IDENTIFIER_REFUSED = "grants:anonymized:identifier-refused"
    ANON_RECORD = "grants:anonymized:record"
    ANON_RECORDS = "grants:anonymized:records"
    AGREEMENT_ADD = "grants:agreement:add"
    AGREEMENT_SIGN = "grants:agreement:sign"
    CLEARANCE_VERIFY = "grants:clearance:verify"
    EXPORT_CREATE = "grants:export:create"
    EXPORT_DESTROY = "grants:export:destroy"
    EXPORTS_OUTSTANDING = "grants:export:outstanding-alert"
    GRANT_APPROVE = "grants:grant:approve"
    GRANT_END = "grants:grant:end"
    GRANT_REQUEST = "grants:grant:request"
    GRANT_REVOKE = "grants:grant:revoke"
    KEY_ROTATE = "grants:anonymized:rotate-key"
    OVERSIGHT_REPORT = "oversight:report:generate"
    REIDENTIFY = "grants:anonymized:reidentify"
    STATS_QUERY = "grants:statistics:query"
    TRAINING_ATTEST = "grants:training:attest"

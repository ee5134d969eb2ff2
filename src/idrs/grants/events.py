"""Audit event types of the grants package (``scope:resource:action``, alphabetized).

``audit.events.make_event`` only uses ``str(type)``, so these StrEnum members are passed to it
as they are.
"""

from __future__ import annotations

from enum import StrEnum


class GrantEvent(StrEnum):
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
    OVERSIGHT_REPORT = "oversight:report:generate"
    TRAINING_ATTEST = "grants:training:attest"

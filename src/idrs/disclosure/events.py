"""Audit event types of the disclosure package (``scope:resource:action``, alphabetized)."""

from __future__ import annotations

from idrs.audit.events import AuditEvent


class DisclosureEvent(AuditEvent):
    AGREEMENT_ADD = "disclosure:agreement:add"
    AGREEMENT_REVOKE = "disclosure:agreement:revoke"
    BATCH_APPROVE = "disclosure:batch:approve"
    BATCH_DECIDE = "disclosure:batch:decide"
    BATCH_HOLD = "disclosure:batch:hold"
    BATCH_READ = "disclosure:batch:read"
    BATCH_REJECT = "disclosure:batch:reject"
    BATCH_REFUSE = "disclosure:batch:refuse"

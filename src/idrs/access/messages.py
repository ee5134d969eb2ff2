"""Plain messages for each reason code, safe to show the employee.

They say why in general terms and reveal nothing about the third party (never who, which
return, or what link): the evidence is for security staff only (``idrs access explain``).
"""

from __future__ import annotations

MESSAGES: dict[str, str] = {
    "NOT_IN_PROFILE": "{command} is not in your command-code profile.",
    "NO_BUSINESS_NEED": "You have no open case or taxpayer contact for this account "
    "(or the case or contact you named is not yours, not open, or not for this account; "
    "a NAMES search needs a stated reason).",
    "CONFLICT_SELF": "This is your own account; employees may never open their own account.",
    "CONFLICT_SPOUSE": "You are linked to this account through a joint or separate return "
    "(a current or former spouse). Ask your manager to reassign the work.",
    "CONFLICT_RELATIVE": "You are linked to this account through family links on tax returns. "
    "Ask your manager to reassign the work.",
    "CONFLICT_HOUSEHOLD": "You are linked to this account through a shared household address. "
    "Ask your manager to reassign the work.",
    "CONFLICT_FINANCIAL": "You are linked to this account through a shared bank account. "
    "Ask your manager to reassign the work.",
    "CONFLICT_BUSINESS": "You are linked to this account through a business relationship. "
    "Ask your manager to reassign the work.",
    "CONFLICT_DECLARED": "You declared a relationship with this taxpayer. "
    "Ask your manager to reassign the work.",
    "CONFLICT_COWORKER": "This account belongs to a co-worker in your unit.",
    "PROTECTED_EMPLOYEE_ACCOUNT": "This is an agency employee's account; it needs the "
    "employee-accounts authority and may never be in your own unit.",
    "SENSITIVE_ACCOUNT": "This account needs the sensitive-accounts authority.",
    "RATE_LIMITED": "You reached today's ceiling of distinct taxpayers; ask your manager.",
    "TRAINING_NOT_CURRENT": "Your annual UNAX training attestation is missing or older than "
    "a year; attest it before any research.",
    "NO_GRANT": "People from outside the agency reach taxpayer data only through an approved "
    "access grant, and you have none.",
    "GRANT_PENDING_APPROVAL": "Your access grant is not yet approved.",
    "GRANT_NOT_STARTED": "Your access grant is approved but its term has not started.",
    "GRANT_EXPIRED": "Your access grant's term has ended.",
    "GRANT_REVOKED": "Your access grant was revoked.",
    "AGREEMENT_NOT_SIGNED": "Sign the current confidentiality agreement before any access.",
    "CLEARANCE_NOT_VERIFIED": "Your security clearance has not been recorded as verified.",
    "OUT_OF_SCOPE": "This command, data class or population is outside your access grant.",
    "DENIED_BY_DEFAULT": "Access refused: no policy allows this request.",
}


def message_for(code: str, command: str = "") -> str:
    """The employee-facing message for ``code`` (a generic refusal for unknown codes)."""
    return MESSAGES.get(code, "Access refused.").format(command=command or "This command")

"""The policy information point: everything the decision needs, gathered in one place.

INTERIM VERSION (foundation): only the profile. The access-decision work replaces the body
of ``gather`` and extends ``Facts``; the signature stays.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from idrs.context import App
from idrs.people.models import Employee


@dataclass(frozen=True)
class Facts:
    employee_id: int
    seid: str
    roles: frozenset[str]
    profile: frozenset[str]
    command: str
    tin: str | None
    case: str | None = None
    contact: str | None = None
    reason: str | None = None
    extra: dict[str, object] = field(default_factory=dict)


def gather(
    session: Session,
    app: App,
    *,
    employee: Employee,
    command: str,
    tin: str | None,
    case: str | None = None,
    contact: str | None = None,
    reason: str | None = None,
) -> Facts:
    """Collect the facts for one request by ``employee``. Reads only; records nothing."""
    return Facts(
        employee_id=employee.id,
        seid=employee.seid,
        roles=employee.role_set,
        profile=employee.profile_set,
        command=command,
        tin=tin,
        case=case,
        contact=contact,
        reason=reason,
    )

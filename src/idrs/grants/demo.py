"""The seed scenario's people and paperwork, for ``idrs demo`` and the seed (issue 6 point 8).

:func:`seed_outside_detail` adds an outside engineer on a 120-day detail whose grant is
requested but not yet approved, the two approvers (privacy officer, authorizing official),
a security administrator who verified the detailee's clearance, the current confidentiality
agreement (unsigned), and the detailee's UNAX training. Everything goes through the service
functions, so each step is recorded in the audit log like any other.

Callers: the seed/demo (the lead wires it), the tests. Returns the credentials of the people
it created (shown once), the grant id and the agreement id.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from idrs.audit.events import Actor
from idrs.context import App
from idrs.grants import service
from idrs.people import service as people
from idrs.vocabulary import CommandCode, Role

AGREEMENT_TITLE = "Confidentiality agreement for outside personnel"
AGREEMENT_TEXT = (
    "I understand that federal tax returns and return information are confidential "
    "(26 U.S.C. 6103). I will inspect them only as my assignment requires and disclose them "
    "to no one. Unauthorized inspection is a crime (26 U.S.C. 7213A); unauthorized disclosure "
    "is a felony (26 U.S.C. 7213). At the end of my detail I will return or destroy all "
    "material I obtained and certify its destruction.\n"
)
PEOPLE = (  # SEID, name, roles, kind, home organization, synthetic TIN
    ("PO100", "Pat Officer", Role.PRIVACY_OFFICER, "employee", None, "900-49-0100"),
    ("AO100", "Alex Official", Role.AUTHORIZING_OFFICIAL, "employee", None, "900-49-0101"),
    ("SA100", "Sam Admin", Role.SECURITY_ADMIN, "employee", None, "900-49-0102"),
    ("DT100", "Dana Engineer", Role.EXAMINER, "detailee", "Department of Energy", "900-49-0103"),
)


def seed_outside_detail(app: App, *, actor: str = "system") -> dict[str, Any]:
    """Create the scenario (see the module docstring); the grant starts today, pending."""
    who = Actor(actor)
    creds = {}
    for seid, name, roles, kind, org, tin in PEOPLE:
        creds[seid] = {**people.create_employee(
            app, unax_attested_at=app.clock.now(), seid=seid, name=name, tin=tin, roles=roles,
                                                kind=kind, home_org=org, actor=actor),
                       "roles": roles, "tin": tin}
    agreement = service.add_agreement(app, title=AGREEMENT_TITLE, text=AGREEMENT_TEXT, actor=who)
    service.verify_clearance(app, seid="DT100", by="SA100", actor=who)
    service.record_training(app, seid="DT100", actor=who)
    today = app.clock.now().date()
    grant = service.request_grant(
        app, principal="DT100", purpose="Modernization engineering support (120-day detail)",
        basis="5 U.S.C. 3341 (details); 26 U.S.C. 6103(h)(1) (officers and employees)",
        commands=f"{CommandCode.ENMOD},{CommandCode.IMFOL}", classes="identity,return", population="all", start=today,
        end=today + timedelta(days=120), daily_limit=50, agreement=AGREEMENT_TITLE, actor=who)
    return {"people": creds, "grant_id": grant.grant_id,
            "agreement_id": agreement.agreement_id, "status": grant.status}

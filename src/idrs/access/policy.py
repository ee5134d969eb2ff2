"""The policy decision point. INTERIM VERSION (foundation): signed in + command in profile.

The access-decision work replaces this with Cedar policies; ``decide(facts) -> Verdict`` stays.
"""

from __future__ import annotations

from idrs.access.decision import Obligations, Verdict
from idrs.access.facts import Facts
from idrs.errors import Reason
from idrs.masterfile.screens import ALL_CLASSES

POLICY_VERSION = "interim-profile-only"


def decide(facts: Facts) -> Verdict:
    """Allow only a command in the employee's profile; deny by default."""
    if facts.command in facts.profile:
        return Verdict(True, [], Obligations(visible=ALL_CLASSES), POLICY_VERSION)
    return Verdict(
        False,
        [Reason("NOT_IN_PROFILE", f"{facts.command} is not in your command-code profile")],
        Obligations(visible=frozenset()),
        POLICY_VERSION,
    )

"""The vocabulary guard: roles and command codes are named once, and a typo fails here.

- every named group of roles (people/roles.py) has exactly the members it had when it was
  a frozenset of strings beside the routes and services;
- no string in src/ spells a role or a command code except idrs/vocabulary.py (the services,
  API and pages name the enum members and the groups);
- every command code in the Cedar policies and schema, every role in a route's
  ``x-authorization`` and every role or code a template compares against is a member.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import re
from pathlib import Path

import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

import idrs
from idrs.access import policy
from idrs.adjustments.rules import Thresholds
from idrs.config import Settings
from idrs.people import roles
from idrs.vocabulary import ADJUSTMENT_CODES, ALL_CODES, RESEARCH_CODES, CommandCode, Role

SRC = Path(idrs.__file__).parent
ROLE_WORDS = frozenset(r.value for r in Role)
ALL_ROLES_SET = frozenset(Role)
CODE_WORDS = frozenset(c.value for c in CommandCode)

#: Each group and the members the frozenset of strings it replaced had (issue 12).
GROUPS: dict[str, set[str]] = {
    "UNIT_MANAGERS": {"manager"},
    "WALK_IN_ROLES": {"csr"},
    "ADJUSTMENT_APPROVERS": {"manager"},
    "ADJUSTMENT_REQUESTERS": {"examiner", "csr", "manager"},
    "SECURITY_ADMINS": {"security_admin"},
    "RESTRICTED_ROLES": {"authorizing_official", "manager", "privacy_officer", "security_admin"},
    "WATCH_ROLES": {"auditor", "privacy_analyst", "privacy_officer", "security_admin",
                    "authorizing_official"},
    "ACCESS_EXPLAINERS": {"security_admin", "privacy_analyst", "privacy_officer"},
    "AUDIT_READERS": {"auditor"},
    "ALERT_REVIEWERS": {"privacy_analyst"},
    "INVESTIGATORS": {"security_admin"},
    "DETECTION_RUNNERS": {"privacy_analyst", "privacy_officer"},
    "NOTICE_STAFF": {"privacy_analyst", "privacy_officer"},
    "ACCOUNTING_READERS": {"privacy_analyst", "auditor", "privacy_officer"},
    "WEEKLY_OVERSEERS": {"privacy_officer", "privacy_analyst", "authorizing_official", "auditor"},
    "WEEKLY_READERS": {"privacy_officer", "privacy_analyst", "authorizing_official", "auditor",
                       "manager"},
    "OVERSIGHT_READERS": {"privacy_officer", "authorizing_official", "auditor"},
    "DISCLOSURE_OFFICERS": {"privacy_officer"},
    "DISCLOSURE_READERS": {"privacy_officer", "auditor"},
    "GRANT_STAFF": {"privacy_officer", "authorizing_official", "security_admin"},
    "GRANT_RECORD_READERS": {"privacy_officer", "authorizing_official", "security_admin",
                             "auditor"},
    "AGREEMENT_AUTHORS": {"privacy_officer", "authorizing_official"},
    "REIDENTIFIERS": {"security_admin"},
    "RECORD_KEEPERS": {"security_admin", "privacy_officer", "authorizing_official"},
}

#: Strings equal to a role or code that mean something else (file, value, why).
NOT_VOCABULARY = {
    ("detection/bases.py", "manager"): "the name of a DuckDB column (is the employee a manager)",
}


@pytest.mark.parametrize("name", sorted(GROUPS))
def test_each_group_has_the_members_it_had(name: str) -> None:
    group = getattr(roles, name)
    assert group == frozenset(GROUPS[name])
    assert all(isinstance(r, Role) for r in group), f"{name} holds a plain string"


def test_every_group_in_people_roles_is_pinned() -> None:
    groups = {n for n, v in vars(roles).items()
              if n.isupper() and isinstance(v, frozenset) and v and v <= ALL_ROLES_SET}
    assert groups - {"ALL_ROLES"} == set(GROUPS), "a new group needs its members pinned here"


def test_the_code_subsets_partition_the_codes() -> None:
    assert set(RESEARCH_CODES) | set(ADJUSTMENT_CODES) == ALL_CODES == set(CommandCode)
    assert not set(RESEARCH_CODES) & set(ADJUSTMENT_CODES)
    assert [c.value for c in RESEARCH_CODES] == ["ENMOD", "IMFOL", "TXMOD", "RTVUE", "INOLE",
                                                 "NAMES", "IRPTR"]
    assert [c.value for c in ADJUSTMENT_CODES] == ["ENREQ", "ADJ54", "REQ77"]
    for role, codes in roles.ROLE_CODES.items():
        assert codes <= ALL_CODES, role


def test_members_read_as_the_plain_strings() -> None:
    """Stored values, audit entries, JSON and pages must not change with the enum."""
    assert f"{Role.PRIVACY_OFFICER}" == "privacy_officer" == str(Role.PRIVACY_OFFICER)
    assert ",".join(sorted(roles.OVERSIGHT_READERS)) == "auditor,authorizing_official,privacy_officer"
    assert f"{CommandCode.ADJ54}" == "ADJ54"


def _string_constants(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    return [(n.lineno, n.value) for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def test_no_role_or_code_is_spelled_outside_the_vocabulary() -> None:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC).as_posix()
        if rel == "vocabulary.py":
            continue
        for line, value in _string_constants(path):
            if value in ROLE_WORDS | CODE_WORDS and (rel, value) not in NOT_VOCABULARY:
                found.append(f"{rel}:{line}: {value!r}")
    assert not found, "name the Role / CommandCode member or a people.roles group:\n" + "\n".join(found)


def test_the_guard_sees_a_spelled_role(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text('READERS = frozenset({"auditor"})\nif cmd == "NAMES":\n    pass\n')
    assert sorted(v for _, v in _string_constants(bad) if v in ROLE_WORDS | CODE_WORDS) == [
        "NAMES", "auditor"]


# -- the policies ---------------------------------------------------------------------------


def test_every_action_of_the_policies_is_a_command_code() -> None:
    seen = set()
    for path in sorted(policy.POLICY_DIR.glob("*.cedar")):
        actions = re.findall(r'Action::"([^"]*)"', path.read_text())
        unknown = set(actions) - CODE_WORDS
        assert not unknown, f"{path.name}: unknown action {sorted(unknown)}"
        seen |= set(actions)
    assert seen, "the policies name no action at all (the pattern is stale)"


def test_the_schema_declares_exactly_the_command_codes() -> None:
    schema = (policy.POLICY_DIR / policy.SCHEMA_FILE).read_text()
    groups = {g: [a.strip() for a in names.split(",")]
              for names, g in re.findall(r"action\s+([A-Z0-9, ]+?)\s+in\s+\[(\w+)\]", schema)}
    assert groups == {"research": list(RESEARCH_CODES), "adjust": list(ADJUSTMENT_CODES)}


# -- the API and the pages -------------------------------------------------------------------


def _routers() -> list[tuple[str, APIRouter]]:
    out = []
    for pkg in ("idrs.api", "idrs.web"):
        for info in pkgutil.iter_modules(importlib.import_module(pkg).__path__):
            module = importlib.import_module(f"{pkg}.{info.name}")
            out += [(module.__name__, v) for v in vars(module).values() if isinstance(v, APIRouter)]
    return out


def test_every_role_a_route_declares_is_a_role() -> None:
    labels = 0
    for module, router in _routers():
        for route in router.routes:
            if not isinstance(route, APIRoute):
                continue
            rule = (route.openapi_extra or {}).get("x-authorization", "")
            if rule.startswith("role:"):
                labels += 1
                named = set(rule.removeprefix("role:").split(","))
                assert named <= ROLE_WORDS, f"{module} {route.path}: {sorted(named - ROLE_WORDS)}"
    assert labels > 30, "the routers were not found (the walk is stale)"


_JINJA = re.compile(r"\{[{%](.*?)[%}]\}", re.S)
_ROLE_TEST = re.compile(r"""['"]([^'"]*)['"]\s+(?:not\s+)?in\s+[\w.]*role""")
_CODE_LIKE = re.compile(r"""['"]([A-Z][A-Z0-9]{4})['"]""")


def _template_problems(text: str) -> list[str]:
    problems = []
    for block in _JINJA.findall(text):
        problems += [f"role {r!r}" for r in _ROLE_TEST.findall(block) if r not in ROLE_WORDS]
        problems += [f"code {c!r}" for c in _CODE_LIKE.findall(block) if c not in CODE_WORDS]
    return problems


def test_every_role_or_code_a_template_names_is_a_member() -> None:
    templates = sorted(SRC.rglob("templates/*.html"))
    assert templates
    for path in templates:
        assert not _template_problems(path.read_text()), path.name


def test_the_template_guard_sees_a_typo() -> None:
    assert _template_problems("{% if 'auditr' in user.employee.role_set %}") == ["role 'auditr'"]
    assert _template_problems("{% for c in ['ADJ54', 'REQ78'] %}") == ["code 'REQ78'"]
    assert _template_problems("{% if 'auditor' in user.employee.role_set %}") == []


# -- settings that moved onto config.Settings ------------------------------------------------


def test_adjustment_thresholds_default_to_the_settings_defaults() -> None:
    assert Thresholds.from_settings(Settings.model_construct()) == Thresholds()


def test_every_event_type_is_one_family_on_one_base_with_unique_values() -> None:
    """Every enum whose members name audit event types derives from AuditEvent, and no value
    is spelled twice (an entry's type names one event, wherever it was recorded)."""
    from enum import Enum

    from idrs.audit.events import AuditEvent

    for info in pkgutil.walk_packages(idrs.__path__, "idrs."):
        if not info.name.endswith("__main__") and ".migrations" not in info.name:
            importlib.import_module(info.name)
    families: list[type[AuditEvent]] = []
    stack: list[type[AuditEvent]] = [AuditEvent]
    while stack:
        cls = stack.pop()
        families.extend(cls.__subclasses__())
        stack.extend(cls.__subclasses__())
    assert {f.__name__ for f in families} >= {
        "EventType", "DetectionEvent", "GrantEvent", "NoticeEvent", "RecordEvent"}
    values = [m.value for f in families for m in f]
    assert len(values) == len(set(values)), sorted(v for v in values if values.count(v) > 1)
    event_shape = re.compile(r"^[a-z-]+:[a-z-]+:[a-z-]+$")
    for module in list(__import__("sys").modules.values()):
        if not getattr(module, "__name__", "").startswith("idrs."):
            continue
        for obj in vars(module).values():
            if (isinstance(obj, type) and issubclass(obj, Enum) and obj.__module__ == module.__name__
                    and any(event_shape.match(str(m.value)) for m in obj)):
                assert issubclass(obj, AuditEvent), f"{obj.__module__}.{obj.__name__}"

"""Exceptions shared by every package. Checks raise; they never return a bool to forget."""

from __future__ import annotations

from dataclasses import dataclass, field


class IdrsError(Exception):
    """A refusal or bad input with a one-line message for the operator (exit 1 / 4xx)."""

    status_code = 400


class NotFound(IdrsError):
    status_code = 404


class Conflict(IdrsError):
    status_code = 409


class ConfigurationError(IdrsError):
    """Keys missing or unreadable, database unreachable: the system cannot work safely."""

    status_code = 503


class ReplicaBehind(ConfigurationError):
    """The read replica has not caught up with the primary within the configured wait."""


@dataclass(frozen=True)
class Reason:
    """One reason code (docs/interface.md) with a message safe to show the employee."""

    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


@dataclass
class AccessDenied(IdrsError):
    """The decision point refused. Carries every applicable reason and the audit index."""

    reasons: list[Reason] = field(default_factory=list)
    audit_index: int | None = None
    #: a session refusal (expired, ended) whose token still names the employee: their SEID,
    #: so the refused call is recorded under them, not as "anonymous"
    seid: str | None = None

    status_code = 403

    def __post_init__(self) -> None:
        if not self.reasons:
            # An empty refusal is a programming error; still refuse, never allow.
            self.reasons = [Reason("AUTH_REQUIRED", "access refused")]
        super().__init__(self.__str__())

    @property
    def codes(self) -> list[str]:
        return [r.code for r in self.reasons]

    def __str__(self) -> str:
        return "access denied: " + ", ".join(self.codes)


class ValidationFailed(IdrsError):
    """Input that does not validate; ``problems`` lists each as 'line N: field: reason'."""

    status_code = 422

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("; ".join(problems[:5]) + (" …" if len(problems) > 5 else ""))

"""The import format (docs/interface.md, "Import"): strict Pydantic 2 models of one line.

Callers: ``masterfile.importer`` validates each JSON line with :func:`parse_line`; the seed
builds the same models with ``model_construct`` (already valid). After validation:
TINs and EINs are canonical 9-digit strings, money is integer cents, dates are ``date``.

Strict: unknown fields are errors; strings are not numbers and numbers are not strings.
When the validation context says ``synthetic_only`` (the default setting), identifiers
outside the synthetic ranges are refused (TIN area 900–999 group 00–49, EIN prefix 00,
routing prefix 80). Error messages never echo a whole identifier.

Extensions of the original format (optional fields): ``transactions[].action_code`` and
``information_returns`` (for IRPTR).
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from idrs import identifiers as ids

FILING_STATUSES = ("S", "MFJ", "MFS", "HOH", "QSS")
RELATIONSHIPS = (
    "son",
    "daughter",
    "stepchild",
    "foster_child",
    "grandchild",
    "sibling",
    "parent",
    "other",
)
MARKERS = ("high_profile", "identity_theft", "deceased", "employee", "sensitive", "disaster_relief")
#: transaction codes the master file knows (docs/domain.md: the codes the domain names, plus common payments and credits)
TRANSACTION_CODES = frozenset(
    {
        "000",
        "150",
        "290",
        "291",
        "420",
        "421",
        "570",
        "571",
        "610",
        "670",
        "766",
        "768",
        "806",
        "846",
        "971",
        "977",
    }
)
INFORMATION_FORMS = ("W-2", "1099-INT", "1099-DIV", "1099-NEC", "1099-MISC", "1099-R", "1099-G")
STATES = frozenset(
    [
        "AL",
        "AK",
        "AZ",
        "AR",
        "CA",
        "CO",
        "CT",
        "DE",
        "DC",
        "FL",
        "GA",
        "HI",
        "ID",
        "IL",
        "IN",
        "IA",
        "KS",
        "KY",
        "LA",
        "ME",
        "MD",
        "MA",
        "MI",
        "MN",
        "MS",
        "MO",
        "MT",
        "NE",
        "NV",
        "NH",
        "NJ",
        "NM",
        "NY",
        "NC",
        "ND",
        "OH",
        "OK",
        "OR",
        "PA",
        "RI",
        "SC",
        "SD",
        "TN",
        "TX",
        "UT",
        "VT",
        "VA",
        "WA",
        "WV",
        "WI",
        "WY",
        "PR",
        "GU",
        "VI",
        "AS",
        "MP",
        "AA",
        "AE",
        "AP",
        "FM",
        "MH",
        "PW",
    ]
)
MIN_YEAR, MAX_YEAR = 1990, 2100
MAX_CENTS = 10**15  # ten trillion dollars: anything larger is a typo

_ZIP = re.compile(r"^[0-9]{5}(-?[0-9]{4})?$")
_PHONE = re.compile(r"^\(?[0-9]{3}\)?[-. ]?[0-9]{3}[-. ]?[0-9]{4}$")
_PTIN = re.compile(r"^P[0-9]{8}$")


def _synthetic_only(info: ValidationInfo) -> bool:
    ctx = info.context
    return True if ctx is None else bool(ctx.get("synthetic_only", True))


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("type", "must be a string")
    return value


def _tin(value: Any, info: ValidationInfo) -> str:
    try:
        tin = ids.normalize_tin(_str(value))
    except ids.BadIdentifier:
        raise PydanticCustomError("tin", "not a TIN (9 digits, NNN-NN-NNNN)") from None
    if _synthetic_only(info) and not ids.is_synthetic_tin(tin):
        raise PydanticCustomError("tin", "outside the synthetic range (area 900-999, group 00-49)")
    return tin


def _ein(value: Any, info: ValidationInfo) -> str:
    try:
        ein = ids.normalize_ein(_str(value))
    except ids.BadIdentifier:
        raise PydanticCustomError("ein", "not an EIN (NN-NNNNNNN)") from None
    if _synthetic_only(info) and not ids.is_synthetic_ein(ein):
        raise PydanticCustomError("ein", "outside the synthetic range (prefix 00)")
    return ein


def _routing(value: Any, info: ValidationInfo) -> str:
    try:
        routing = ids.check_routing(_str(value))
    except ids.BadIdentifier as exc:
        raise PydanticCustomError("routing", str(exc)) from None
    if _synthetic_only(info) and not ids.is_synthetic_routing(routing):
        raise PydanticCustomError("routing", "outside the synthetic range (prefix 80)")
    return routing


def _account(value: Any) -> str:
    try:
        return ids.check_account(_str(value))
    except ids.BadIdentifier as exc:
        raise PydanticCustomError("account", str(exc)) from None


def _cents(value: Any) -> int:
    """JSON number with at most two decimals → integer cents."""
    if isinstance(value, int) and not isinstance(value, bool):
        cents = value * 100
    elif isinstance(value, float):
        text = repr(value)
        dot = text.find(".")
        if "e" in text or "n" in text:  # exponent form, inf or nan: decide exactly
            cents = _decimal_cents(value)
        elif dot >= 0 and len(text) - dot - 1 > 2:
            raise PydanticCustomError("money", "at most two decimals")
        else:
            cents = round(value * 100)
    elif isinstance(value, Decimal):
        cents = _decimal_cents(value)
    else:
        raise PydanticCustomError("money", "must be a number")
    if abs(cents) >= MAX_CENTS:
        raise PydanticCustomError("money", "amount out of range")
    return cents


def _decimal_cents(value: float | Decimal) -> int:
    try:
        dec = Decimal(repr(value)) if isinstance(value, float) else value
        if not dec.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise PydanticCustomError("money", "must be a finite number") from None
    if dec != dec.quantize(Decimal("0.01")):
        raise PydanticCustomError("money", "at most two decimals")
    return int(dec * 100)


def _nonneg_cents(value: Any) -> int:
    cents = _cents(value)
    if cents < 0:
        raise PydanticCustomError("money", "must not be negative")
    return cents


def _text(max_len: int, required: bool = True) -> Any:
    """A text field: trimmed, 1..max_len characters (0.. when optional), no control characters."""
    return StringConstraints(
        strip_whitespace=True,
        min_length=1 if required else 0,
        max_length=max_len,
        pattern=r"^[^\x00-\x1f\x7f]*$",
    )


Tin = Annotated[str, BeforeValidator(_tin)]
Ein = Annotated[str, BeforeValidator(_ein)]
Routing = Annotated[str, BeforeValidator(_routing)]
Account = Annotated[str, BeforeValidator(_account)]
Cents = Annotated[int, BeforeValidator(_cents)]
NonNegCents = Annotated[int, BeforeValidator(_nonneg_cents)]
Day = date
Year = Annotated[int, Field(ge=MIN_YEAR, le=MAX_YEAR)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=False)


class NameIn(_Strict):
    first: Annotated[str, _text(40)]
    middle: Annotated[str, _text(40, required=False)] = ""
    last: Annotated[str, _text(60)]
    suffix: Annotated[str, _text(10, required=False)] = ""


class AddressIn(_Strict):
    street: Annotated[str, _text(120)]
    city: Annotated[str, _text(60)]
    state: str
    zip: str

    @model_validator(mode="after")
    def _postal(self) -> AddressIn:
        if self.state.upper() not in STATES:
            raise PydanticCustomError("state", "state: not a US state or territory code")
        self.state = self.state.upper()
        if not _ZIP.match(self.zip):
            raise PydanticCustomError("zip", "zip: must be NNNNN or NNNNN-NNNN")
        return self


class DirectDepositIn(_Strict):
    routing: Routing
    account: Account


class RefundIn(_Strict):
    amount: NonNegCents
    direct_deposit: DirectDepositIn | None = None


class DependentIn(_Strict):
    tin: Tin
    relationship: Literal[
        "son", "daughter", "stepchild", "foster_child", "grandchild", "sibling", "parent", "other"
    ]
    name: NameIn
    adoption_pending: bool = False


class W2In(_Strict):
    employer_ein: Ein
    employer_name: Annotated[str, _text(120)]
    wages: NonNegCents
    withholding: NonNegCents


class K1In(_Strict):
    entity_ein: Ein
    entity_name: Annotated[str, _text(120)]
    share_pct: Annotated[float, Field(gt=0, le=100)]


class ScheduleCIn(_Strict):
    business_name: Annotated[str, _text(120)]
    ein: Ein | None = None


class ReturnIn(_Strict):
    tax_year: Year
    filing_status: Literal["S", "MFJ", "MFS", "HOH", "QSS"]
    spouse_tin: Tin | None = None
    address: AddressIn | None = None
    dependents: list[DependentIn] = []
    w2: list[W2In] = []
    k1: list[K1In] = []
    schedule_c: list[ScheduleCIn] = []
    agi: Cents
    total_tax: NonNegCents
    preparer_ptin: str | None = None
    refund: RefundIn | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ReturnIn:
        married = self.filing_status in ("MFJ", "MFS")
        if married and self.spouse_tin is None:
            raise PydanticCustomError("spouse", f"spouse_tin: required for {self.filing_status}")
        if not married and self.spouse_tin is not None:
            raise PydanticCustomError(
                "spouse", f"spouse_tin: not allowed for filing status {self.filing_status}"
            )
        if self.preparer_ptin is not None and not _PTIN.match(self.preparer_ptin):
            raise PydanticCustomError("ptin", "preparer_ptin: must be P followed by 8 digits")
        seen: set[str] = set()
        for i, dep in enumerate(self.dependents):
            if dep.tin in seen or dep.tin == self.spouse_tin:
                raise PydanticCustomError("dependent", f"dependents[{i}].tin: listed twice")
            seen.add(dep.tin)
        return self


class TransactionIn(_Strict):
    tax_year: Year
    tc: str
    date: Day
    amount: Cents
    action_code: str | None = None

    @model_validator(mode="after")
    def _code(self) -> TransactionIn:
        if self.tc not in TRANSACTION_CODES:
            raise PydanticCustomError(
                "tc",
                f"tc: unknown transaction code (one of {', '.join(sorted(TRANSACTION_CODES))})",
            )
        if self.action_code is not None and (
            self.tc != "971" or not re.fullmatch(r"[0-9]{3}", self.action_code)
        ):
            raise PydanticCustomError("tc", "action_code: only on TC 971, three digits")
        return self


class InformationReturnIn(_Strict):
    tax_year: Year
    form: Literal["W-2", "1099-INT", "1099-DIV", "1099-NEC", "1099-MISC", "1099-R", "1099-G"]
    payer_ein: Ein
    payer_name: Annotated[str, _text(120)]
    amount: NonNegCents
    withholding: NonNegCents = 0


class TaxpayerIn(_Strict):
    tin: Tin
    name: NameIn
    date_of_birth: Day | None = None
    address: AddressIn
    phone: str | None = None
    markers: list[
        Literal[
            "high_profile", "identity_theft", "deceased", "employee", "sensitive", "disaster_relief"
        ]
    ] = []
    returns: list[ReturnIn] = []
    transactions: list[TransactionIn] = []
    information_returns: list[InformationReturnIn] = []

    @model_validator(mode="after")
    def _consistent(self) -> TaxpayerIn:
        if self.phone is not None:
            if not _PHONE.match(self.phone):
                raise PydanticCustomError("phone", "phone: must be NNN-NNN-NNNN")
            digits = re.sub(r"\D", "", self.phone)
            self.phone = f"{digits[:3]}-{digits[3:6]}-{digits[6:]}"
        if self.date_of_birth is not None and not date(1880, 1, 1) <= self.date_of_birth <= date(
            2100, 1, 1
        ):
            raise PydanticCustomError("dob", "date_of_birth: out of range")
        years: set[int] = set()
        for i, ret in enumerate(self.returns):
            if ret.tax_year in years:
                raise PydanticCustomError("year", f"returns[{i}].tax_year: year listed twice")
            years.add(ret.tax_year)
            if ret.spouse_tin == self.tin:
                raise PydanticCustomError(
                    "spouse", f"returns[{i}].spouse_tin: is the taxpayer's own TIN"
                )
            if any(d.tin == self.tin for d in ret.dependents):
                raise PydanticCustomError(
                    "dependent", f"returns[{i}].dependents: the taxpayer's own TIN"
                )
        self.markers = sorted(set(self.markers))
        return self

    @property
    def years(self) -> set[int]:
        """Tax years this record carries (their data replaces what is stored)."""
        return (
            {r.tax_year for r in self.returns}
            | {t.tax_year for t in self.transactions}
            | {i.tax_year for i in self.information_returns}
        )


def _loc(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


def problems_of(lineno: int, exc: ValidationError) -> list[str]:
    """``line N: field: reason`` for every error (never the offending value itself)."""
    out = []
    for err in exc.errors(include_url=False, include_input=False):
        where = _loc(tuple(err["loc"]))
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown field"
        elif err["type"] == "missing":
            msg = "required"
        elif err["type"] == "json_invalid":
            where, msg = where or "json", "invalid JSON"
        elif err["type"] in ("model_type", "model_attributes_type"):
            msg = "must be an object"
        # model-level checks carry their own 'field: reason' prefix
        if ": " in msg and err["type"] in (
            "spouse",
            "ptin",
            "dependent",
            "tc",
            "year",
            "phone",
            "dob",
            "state",
            "zip",
        ):
            sub, msg = msg.split(": ", 1)
            where = f"{where}.{sub}" if where else sub
        out.append(f"line {lineno}: {where or 'record'}: {msg}")
    return out


def parse_line(raw: str | bytes, lineno: int, synthetic_only: bool) -> TaxpayerIn:
    """Validate one JSON line; raises ValidationFailed-ready problems via ``LineInvalid``."""
    try:
        return TaxpayerIn.model_validate_json(raw, context={"synthetic_only": synthetic_only})
    except ValidationError as exc:
        raise LineInvalid(problems_of(lineno, exc)) from None


class LineInvalid(ValueError):
    """One line failed validation; ``problems`` are 'line N: field: reason' strings."""

    def __init__(self, problems: list[str]):
        super().__init__("; ".join(problems))
        self.problems = problems

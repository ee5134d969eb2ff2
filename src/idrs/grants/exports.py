"""Exports of research results (CSV, PDF): registered, watermarked, and certified destroyed.

The data of an export comes ONLY through the research service (``idrs.research.run``, one
call per TIN): each taxpayer in it is decided, recorded and masked (or anonymized) exactly
as on screen. If any of those calls is refused, the whole export is refused (the refusals
are in the audit log; no file is made).

The export is then registered (audit entry first, then the row): id, who, when, the grant
it was made under, counts by sensitivity class, the taxpayers' pseudonyms (never TINs),
format and the file's SHA-256. The file carries the export id twice:

- visibly: a banner line (CSV) / a header on every page and a diagonal mark (PDF), and an
  ``export_id`` column (CSV);
- embedded: (CSV) the id encoded in zero-width characters in every row, invisible in a
  spreadsheet and surviving copy and paste of the rows; (PDF) the document's metadata
  (keywords) and an invisible text line. :func:`read_watermark` recovers it.

Destruction: the holder certifies, with a witness (another employee), the method and the
time; until every export of a grant that is over is certified destroyed the grant shows
"exports outstanding" and an alert is raised (service.check_outstanding).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import secrets
import zlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from idrs import documents, research
from idrs.audit import log as audit_log
from idrs.audit.events import Actor
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.errors import Conflict, NotFound, ValidationFailed
from idrs.grants import rules
from idrs.grants.events import GrantEvent
from idrs.grants.facts import grant_facts
from idrs.grants.models import Export
from idrs.grants.results import ExportDestroyed
from idrs.grants.service import _deny, _employee, _text
from idrs.identifiers import BadIdentifier, normalize_tin
from idrs.people import auth
from idrs.people.models import Employee
from idrs.vocabulary import RESEARCH_CODES, CommandCode

FORMATS = ("csv", "pdf")
MAX_TINS = 1000
_ZW = {"0": "\u200b", "1": "\u200c"}
_ZW_START, _ZW_END = "\u2060", "\u2063"
_ID = re.compile(r"^X-[0-9a-f]{16}$")


@dataclass(frozen=True)
class ExportFile:
    export_id: str
    format: str
    content: bytes
    media_type: str
    filename: str
    taxpayers: int
    counts: dict[str, int]
    grant_id: int | None
    audit_index: int

    def summary(self) -> dict[str, Any]:
        return {"export_id": self.export_id, "format": self.format, "filename": self.filename,
                "taxpayers": self.taxpayers, "counts": self.counts, "grant_id": self.grant_id,
                "sha256": hashlib.sha256(self.content).hexdigest(),
                "audit_index": self.audit_index}


# -- watermarks ----------------------------------------------------------------------------


def zero_width(export_id: str) -> str:
    """The export id as invisible characters (8 bits per character between two markers)."""
    bits = "".join(f"{b:08b}" for b in export_id.encode())
    return _ZW_START + "".join(_ZW[b] for b in bits) + _ZW_END


def read_watermark(data: bytes | str) -> str | None:
    """The export id embedded in a CSV (zero-width) or PDF (metadata) file, if any."""
    if isinstance(data, bytes):
        m = re.search(rb"idrs-export:(X-[0-9a-f]{16})", data)
        if m:
            return m.group(1).decode()
        if data.startswith(b"%PDF"):
            return _pdf_keywords(data)
        data = data.decode("utf-8", errors="replace")
    m2 = re.search(f"{_ZW_START}([\u200b\u200c]+){_ZW_END}", data)
    if not m2:
        return None
    bits = "".join("0" if ch == "\u200b" else "1" for ch in m2.group(1))
    raw = bytes(int(bits[i:i + 8], 2) for i in range(0, len(bits) - 7, 8))
    return raw.decode(errors="replace")


def _pdf_keywords(data: bytes) -> str | None:
    """Search the PDF's compressed object streams (the metadata lives in one)."""
    for m in re.finditer(rb"stream\r?\n", data):
        start = m.end()
        end = data.find(b"endstream", start)
        if end < 0:
            break
        try:
            body = zlib.decompressobj().decompress(data[start:end])
        except zlib.error:
            continue
        hit = re.search(rb"idrs-export:(X-[0-9a-f]{16})", body)
        if hit:
            return hit.group(1).decode()
    return None


# -- flattening answers ----------------------------------------------------------------------


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` → ``{"a.b[0]": 1}`` (the same paths masking reports)."""
    out: dict[str, Any] = {}
    if isinstance(data, dict):
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else k))
    elif isinstance(data, list):
        if not data:
            out[prefix] = ""
        for i, v in enumerate(data):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix] = "" if data is None else data
    return out


def _banner(export_id: str, holder: str, when: datetime) -> str:
    return (f"CONFIDENTIAL TAX INFORMATION - idrs export {export_id} - holder {holder} - "
            f"{when.isoformat(timespec='seconds')} - destroy and certify destruction when the "
            "grant ends")


def render_csv(export_id: str, holder: str, when: datetime, command: str,
               rows: list[tuple[str, dict[str, Any]]]) -> bytes:
    """CSV with a visible banner and export_id column, and the invisible id in every row."""
    flat = [(p, flatten(d)) for p, d in rows]
    columns: list[str] = []
    for _, f in flat:
        columns.extend(c for c in f if c not in columns)
    buf = io.StringIO()
    buf.write("# " + _banner(export_id, holder, when) + "\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["export_id", "command", "taxpayer", *columns])
    mark = zero_width(export_id)
    for pseudonym, f in flat:
        w.writerow([export_id, command, pseudonym + mark, *[f.get(c, "") for c in columns]])
    return buf.getvalue().encode("utf-8")


def render_pdf(export_id: str, holder: str, when: datetime, command: str,
               rows: list[tuple[str, dict[str, Any]]]) -> bytes:
    """PDF: banner on every page, diagonal mark, export id in the metadata."""
    return documents.pdf(documents.ResearchExport(
        export_id=export_id, holder=holder, banner=_banner(export_id, holder, when),
        command=command,
        records=[documents.ExportRecord(p, flatten(data)) for p, data in rows]))


# -- creating and destroying -------------------------------------------------------------------


def _tins(tins: list[str]) -> list[str]:
    if not tins:
        raise ValidationFailed(["tins: at least one TIN"])
    if len(tins) > MAX_TINS:
        raise ValidationFailed([f"tins: at most {MAX_TINS} per export"])
    out = []
    for i, t in enumerate(tins):
        try:
            out.append(normalize_tin(str(t)))
        except BadIdentifier as exc:
            raise ValidationFailed([f"tins[{i}]: {exc}"]) from None
    return list(dict.fromkeys(out))


def _governing_grant(app: App, emp: Employee, command: str) -> int | None:
    with Session(app.engine) as s:
        gf = grant_facts(s, app, emp, command, as_utc(app.clock.now()))
    return gf.grant_id if gf.has_grant and gf.state == rules.ACTIVE else None


def create_export(app: App, *, token: str | None, command: str, tins: list[str], fmt: str,
                  year: int | None = None, case: str | None = None, contact: str | None = None,
                  reason: str | None = None, interface: str = "cli",
                  address: str | None = None) -> ExportFile:
    """Export research results for ``tins`` as CSV or PDF, as the employee behind ``token``.

    Every TIN goes through ``research.run`` (decided, recorded, masked); then the export is
    recorded (grants:export:create) and registered before the file is returned. The caller
    is authenticated before the input is read: without a session, bad input is still 401.
    """
    emp = auth.authenticate(app, token, interface=interface, address=address)
    fmt = (fmt or "").lower()
    if fmt not in FORMATS:
        raise ValidationFailed([f"format: one of {', '.join(FORMATS)}"])
    code = (command or "").strip().upper()
    exportable = [c for c in RESEARCH_CODES if c != CommandCode.NAMES]
    if code not in exportable:
        raise ValidationFailed([f"command: one research code of {', '.join(exportable)}"])
    canon = _tins(tins)
    rows: list[tuple[str, dict[str, Any]]] = []
    indexes: list[int] = []
    for tin in canon:
        ans = research.run(app, token=token, command=code, tin=tin, year=year, case=case,
                           contact=contact, reason=reason, interface=interface, address=address)
        rows.append((app.keyring.pseudonym(tin), ans.data))
        indexes.append(ans.audit_index)
    export_id = "X-" + secrets.token_hex(8)
    now = as_utc(app.clock.now())
    grant_id = _governing_grant(app, emp, code)
    render = render_csv if fmt == "csv" else render_pdf
    content = render(export_id, emp.seid, now, code, rows)
    digest = hashlib.sha256(content).hexdigest()
    counts = {c.value: len(rows) for c in sorted(rules.COMMAND_CLASSES[code])}
    pseudonyms = [p for p, _ in rows]
    idx = audit_log.record(app, GrantEvent.EXPORT_CREATE, Actor(emp.seid, interface, address),
                  {"export_id": export_id, "grant_id": grant_id, "command": code, "format": fmt},
                  {"counts": counts, "taxpayers": pseudonyms, "sha256": digest,
                   "research_indexes": indexes})
    with session_scope(app.engine) as s:
        s.add(Export(id=export_id, employee_id=emp.id, grant_id=grant_id, created_at=now,
                     command=code, format=fmt, counts=json.dumps(counts),
                     pseudonyms=json.dumps(pseudonyms), taxpayers=len(pseudonyms),
                     audit_indexes=",".join(map(str, indexes)), sha256=digest))
    media = "text/csv" if fmt == "csv" else "application/pdf"
    return ExportFile(export_id, fmt, content, media, f"{export_id}.{fmt}", len(rows), counts,
                      grant_id, idx)


def destroy_export(app: App, holder: Employee, *, export_id: str, method: str, witness_seid: str,
                   destroyed_at: datetime | None = None,
                   actor: Actor | None = None) -> ExportDestroyed:
    """The holder certifies, with a witness, that export ``export_id`` was destroyed.

    Refused: an unknown export (404), someone else's export, a witness who is the holder or
    unknown, an export already certified (409), a destruction time in the future.
    """
    actor = actor or Actor(holder.seid)
    method = _text(method, "method")
    now = as_utc(app.clock.now())
    when = as_utc(destroyed_at) if destroyed_at else now
    if when > now:
        raise ValidationFailed(["destroyed_at: in the future"])
    with session_scope(app.engine) as s:
        exp = s.get(Export, export_id) if _ID.match(export_id or "") else None
        if exp is None:
            raise NotFound(f"no export {export_id!r}")
        witness = _employee(s, witness_seid, "witness")
        if exp.certified_at is not None:
            raise Conflict(f"export {export_id} is already certified destroyed")
        owner = s.get(Employee, exp.employee_id)
        owner_seid, witness_seid_n, grant_id = owner.seid if owner else "", witness.seid, exp.grant_id
        if witness.id == holder.id:
            raise ValidationFailed(["witness_seid: the witness must be another person"])
    obj = {"export_id": export_id, "grant_id": grant_id}
    if holder.seid != owner_seid:
        raise _deny(app, GrantEvent.EXPORT_DESTROY, actor, obj, "NOT_IN_PROFILE",
                    "only the holder of an export certifies its destruction")
    idx = audit_log.record(app, GrantEvent.EXPORT_DESTROY, actor, obj,
                  {"witness": witness_seid_n, "method": method,
                   "destroyed_at": when.isoformat()})
    with session_scope(app.engine) as s:
        exp = s.get(Export, export_id)
        assert exp is not None
        exp.destroyed_at, exp.destroyed_by, exp.witness = when, holder.seid, witness_seid_n
        exp.method, exp.certified_at = method, now
    return ExportDestroyed(export_id=export_id, status="destroyed", holder=holder.seid,
                           witness=witness_seid_n, method=method,
                           destroyed_at=when.isoformat(), audit_index=idx)


def export_view(session: Session, export_id: str) -> dict[str, Any]:
    exp = session.get(Export, export_id)
    if exp is None:
        raise NotFound(f"no export {export_id!r}")
    owner = session.get(Employee, exp.employee_id)
    return {"export_id": exp.id, "holder": owner.seid if owner else None,
            "grant_id": exp.grant_id, "created_at": as_utc(exp.created_at).isoformat(),
            "command": exp.command, "format": exp.format, "counts": json.loads(exp.counts),
            "taxpayers": exp.taxpayers, "pseudonyms": json.loads(exp.pseudonyms),
            "sha256": exp.sha256, "destroyed": exp.certified_at is not None,
            "destroyed_at": as_utc(exp.destroyed_at).isoformat() if exp.destroyed_at else None,
            "witness": exp.witness, "method": exp.method}

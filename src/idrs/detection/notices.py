"""The §7431(e) notices as records the interfaces can list and hand out by id.

``issue`` produces the notices of an alert whose investigation recorded a statutory trigger
(a criminal charge or a proposed adverse action; ``detection.investigations`` calls it on
the trigger, and the interfaces may retry one that failed) through ``taxpayer.notice`` (which renders,
stores and records them as sent), writing the files under ``IDRS_HOME/notices`` — a folder
the server chooses, never one a client names. ``document`` hands one stored notice out by
its number, as HTML or as a PDF rendered from the stored HTML (no path is read), and records
the hand-out (``taxpayer:notice:read``): a notice carries the taxpayer's name and address.

Who: the privacy roles (``people.roles.NOTICE_STAFF``); the interfaces check before calling.
"""

from __future__ import annotations

import os
from pathlib import Path

from sqlalchemy import select

from idrs import documents
from idrs.audit import log as audit_log
from idrs.audit.events import AuditEvent, make_event
from idrs.clock import as_utc
from idrs.context import App
from idrs.db import session_scope
from idrs.detection import taxpayer
from idrs.detection.models import TaxpayerNotice
from idrs.detection.results import NoticeListed, NoticeSent
from idrs.errors import NotFound, ValidationFailed

FORMATS = ("html", "pdf")


class NoticeEvent(AuditEvent):
    TAXPAYER_NOTICE_READ = "taxpayer:notice:read"


def notice_folder(app: App) -> Path:
    """``IDRS_HOME/notices`` (created 0700)."""
    out = Path(app.settings.home) / "notices"
    out.mkdir(parents=True, exist_ok=True)
    os.chmod(out, 0o700)
    return out


def _row(n: TaxpayerNotice) -> NoticeListed:
    return NoticeListed(notice_id=n.id, alert_id=n.alert_id, taxpayer=n.taxpayer,
                        trigger=n.trigger, sent_at=as_utc(n.sent_at).isoformat(),
                        audit_index=n.audit_index)


def issue(app: App, *, alert_id: str, actor: str, interface: str = "api") -> list[NoticeSent]:
    """Produce and record the notice(s) of an alert with a statutory trigger; each with its
    ``notice_id`` (400 without a trigger, 409 once sent)."""
    sent = taxpayer.notice(app, alert_id=alert_id, out_dir=notice_folder(app), actor=actor,
                           interface=interface)
    with session_scope(app.engine) as s:
        ids = {(n.alert_id, n.taxpayer): n.id for n in s.scalars(
            select(TaxpayerNotice).where(TaxpayerNotice.alert_id.in_({r.alert_id for r in sent})))}
    return [NoticeSent(notice_id=ids.get((r.alert_id, r.taxpayer)), alert_id=r.alert_id,
                       taxpayer=r.taxpayer, dates=r.dates, trigger=r.trigger,
                       audit_index=r.audit_index)
            for r in sent]


def list_notices(app: App, *, alert_id: str | None = None) -> list[NoticeListed]:
    """Every notice sent (newest first): number, alert, taxpayer pseudonym, when; no identity."""
    with session_scope(app.engine) as s:
        # a row with audit_index -1 is a notice being sent right now (taxpayer.notice)
        q = select(TaxpayerNotice).where(TaxpayerNotice.audit_index >= 0).order_by(
            TaxpayerNotice.id.desc())
        if alert_id:
            q = q.where(TaxpayerNotice.alert_id == alert_id.strip().upper())
        return [_row(n) for n in s.scalars(q)]


def document(app: App, *, notice_id: int, fmt: str, actor: str,
             interface: str = "api") -> tuple[bytes, str, str]:
    """(content, media type, file name) of one stored notice. Records the hand-out."""
    fmt = (fmt or "").lower()
    if fmt not in FORMATS:
        raise ValidationFailed([f"format: one of {', '.join(FORMATS)}"])
    with session_scope(app.engine) as s:
        n = s.get(TaxpayerNotice, int(notice_id))
        if n is None or n.audit_index < 0:
            raise NotFound(f"no notice {notice_id}")
        html, aid, pseud = n.html, n.alert_id, n.taxpayer
    if fmt == "pdf":
        # the PDF is laid out from the HTML as sent: the stored record, not a re-rendering
        content, media = documents.html_to_pdf(html), "application/pdf"
    else:
        content, media = html.encode("utf-8"), "text/html; charset=utf-8"
    audit_log.append(app.engine, make_event(
        NoticeEvent.TAXPAYER_NOTICE_READ, time=app.clock.now(), actor=actor,
        outcome="success", interface=interface,
        obj={"notice_id": int(notice_id), "alert_id": aid, "taxpayer": pseud},
        detail={"format": fmt}))
    return content, media, f"notice-{int(notice_id)}.{fmt}"

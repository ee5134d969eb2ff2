"""The documents idrs produces, each a typed context bound to its template.

A producer builds one of these and hands it to :func:`idrs.documents.html` or
:func:`idrs.documents.pdf`; the template (in ``documents/templates``) sees the fields by
name. Binding the template to the type means a producer cannot pair a context with the
wrong template, and mypy checks what each template is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar


@dataclass(frozen=True)
class Document:
    """Base of every document: the template's name and the context it is rendered with."""

    template: ClassVar[str]

    def context(self) -> dict[str, Any]:
        """The fields by name (not ``asdict``: nested values stay as they are)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class OversightReport(Document):
    """Potential and actual access for an oversight body (``oversight.report.build``'s dict)."""

    template: ClassVar[str] = "oversight_report.html.j2"
    report: Mapping[str, Any]
    #: ``per_day`` and ``classes``: PNG charts as ``data:`` URIs (the page stays one file);
    #: None for a chart with nothing to show (the page says so in words)
    charts: Mapping[str, str | None]
    #: how many committed answers the page lists one by one (the JSON and CSV list all)
    max_listed: int = 1000


@dataclass(frozen=True)
class TaxpayerNotice(Document):
    """The IRC §7431(e) notice of an unauthorized inspection, addressed to the taxpayer."""

    template: ClassVar[str] = "taxpayer_notice.html.j2"
    notice_id: str
    sent: str
    #: the inspection dates, already joined for the sentence ("2024-04-01, 2024-04-02")
    dates: str
    name: str
    street: str
    city: str
    state: str
    zip: str
    #: the statutory trigger: criminal_charge | adverse_action_proposed (IRC 7431(e))
    trigger: str = "adverse_action_proposed"


@dataclass(frozen=True)
class ExportRecord:
    """One taxpayer's answer in an export: pseudonym and flattened fields (path → value)."""

    pseudonym: str
    fields: Mapping[str, object]


@dataclass(frozen=True)
class ResearchExport(Document):
    """A registered export of research answers, watermarked with its id on every page."""

    template: ClassVar[str] = "research_export.html.j2"
    export_id: str
    holder: str
    #: the confidentiality banner printed atop every page and under the title
    banner: str
    command: str
    records: Sequence[ExportRecord]

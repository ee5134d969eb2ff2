"""Every HTML and PDF document idrs produces, and the Jinja2 environments of its templates.

Public surface: the document types (:mod:`idrs.documents.kinds`), :func:`html`,
:func:`pdf`, :func:`html_to_pdf` and :func:`environment` (:mod:`idrs.documents.render`),
and the chart helpers (:mod:`idrs.documents.charts`). Nothing here touches the database:
producers gather and record; this package only lays out what it is given.
"""

from idrs.documents.kinds import (
    Document,
    ExportRecord,
    OversightReport,
    ResearchExport,
    TaxpayerNotice,
)
from idrs.documents.render import environment, html, html_to_pdf, pdf

__all__ = [
    "Document",
    "ExportRecord",
    "OversightReport",
    "ResearchExport",
    "TaxpayerNotice",
    "environment",
    "html",
    "html_to_pdf",
    "pdf",
]

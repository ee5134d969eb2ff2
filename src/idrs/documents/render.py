"""The one place that builds Jinja2 environments and the one call of WeasyPrint.

Every HTML or PDF document idrs hands out (oversight reports, research exports, taxpayer
notices) is a typed :class:`~idrs.documents.kinds.Document` rendered here from a template
in ``documents/templates``; the web interface's pages get their environment from
:func:`environment` too, so every template in the project is autoescaped the same way.

Jinja2 and WeasyPrint are imported when a document is first rendered, never at import:
the command line must start at once, and most commands render nothing.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from idrs.errors import ConfigurationError

if TYPE_CHECKING:
    import jinja2

    from idrs.documents.kinds import Document

TEMPLATES = Path(__file__).parent / "templates"


@cache
def environment(folder: Path) -> jinja2.Environment:
    """The Jinja2 environment of one template folder (built once; autoescape always on).

    Autoescaping is not a per-template choice: every value that reaches a page or a
    document may carry text an employee or a taxpayer typed.
    """
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(folder), autoescape=True)


def html(document: Document) -> str:
    """The document as one self-contained HTML page."""
    return environment(TEMPLATES).get_template(document.template).render(document.context())


def pdf(document: Document) -> bytes:
    """The document as PDF: its HTML, laid out by WeasyPrint."""
    return html_to_pdf(html(document))


def html_to_pdf(page: str) -> bytes:
    """Lay out an HTML page as PDF (WeasyPrint; the page carries its own CSS and images).

    For HTML kept as a record (a notice as sent); new documents go through :func:`pdf`.
    """
    try:
        from weasyprint import HTML
    except (ImportError, OSError) as exc:  # pragma: no cover - a dependency of the project
        # OSError: WeasyPrint is installed but the system's Pango could not be loaded.
        raise ConfigurationError(f"PDF rendering unavailable (WeasyPrint): {exc}") from None
    out: bytes = HTML(string=page).write_pdf()
    return out

"""The documents module: typed contexts match their templates, values are escaped, PDFs lay
out, the heavy libraries load only when a document is rendered, and nothing else in the
tree builds a Jinja2 environment or calls WeasyPrint or matplotlib itself."""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import jinja2
import jinja2.meta
import pytest

from idrs import documents
from idrs.documents.kinds import Document
from idrs.documents.render import TEMPLATES, environment

SRC = Path(__file__).resolve().parents[2] / "src" / "idrs"
HOSTILE = "<script>alert('x')</script> & \"Co\""

NOTICE = documents.TaxpayerNotice(
    notice_id="A-1-1", sent="2024-05-01", dates="2024-04-01", name=HOSTILE,
    street="12 Elm St", city="Dayton", state="OH", zip="45402")
EXPORT = documents.ResearchExport(
    export_id="X-0123456789abcdef", holder="EX001", banner="CONFIDENTIAL banner",
    command="ENMOD",
    records=[documents.ExportRecord("pseudo-1", {"name.last": HOSTILE, "agi": 58000.0})])


def _kinds() -> list[type[Document]]:
    return list(Document.__subclasses__())


@pytest.mark.parametrize("kind", _kinds(), ids=lambda k: k.__name__)
def test_each_template_uses_exactly_the_fields_of_its_context(kind: type[Document]) -> None:
    source = (TEMPLATES / kind.template).read_text()
    used = jinja2.meta.find_undeclared_variables(environment(TEMPLATES).parse(source))
    # every field is used, and the template reads nothing its typed context does not carry
    assert used == {f.name for f in fields(kind)}


def test_every_template_in_the_folder_belongs_to_a_document_kind() -> None:
    assert {p.name for p in TEMPLATES.iterdir()} == {k.template for k in _kinds()}


@pytest.mark.parametrize("doc", [NOTICE, EXPORT], ids=["notice", "export"])
def test_values_are_escaped(doc: Document) -> None:
    page = documents.html(doc)
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;Co&#34;" in page


def test_the_web_pages_share_the_autoescaping_environment() -> None:
    from idrs.web.render import templates

    assert templates.env.autoescape is True
    assert templates.env is environment(SRC / "web" / "templates")


def test_export_carries_its_id_in_the_metadata_and_on_the_page() -> None:
    page = documents.html(EXPORT)
    assert '<meta name="keywords" content="idrs-export:X-0123456789abcdef">' in page
    assert '<div class="mark">X-0123456789abcdef CONFIDENTIAL</div>' in page
    assert "<th>agi</th><td>58000.0</td>" in page


def test_pdf_is_laid_out_by_weasyprint() -> None:
    pdf = documents.pdf(NOTICE)
    assert pdf.startswith(b"%PDF") and len(pdf) > 1000


def test_importing_the_producers_loads_no_rendering_library() -> None:
    """The command line imports these; Jinja2, WeasyPrint and matplotlib wait for a document."""
    code = (
        "import sys, idrs.documents, idrs.oversight.render, idrs.grants.exports, "
        "idrs.detection.taxpayer, idrs.detection.notices, idrs.detection.evaluate\n"
        "print(sorted(m for m in ('jinja2', 'weasyprint', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


#: what only idrs.documents may do: import Jinja2, WeasyPrint or matplotlib, build an environment
_ONLY_IN_DOCUMENTS = re.compile(
    r"^\s*(from|import)\s+(jinja2|weasyprint|matplotlib)\b|Environment\(|Jinja2Templates\(directory")


def test_no_module_outside_documents_renders_by_itself() -> None:
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.is_relative_to(SRC / "documents"):
            continue
        for n, line in enumerate(path.read_text().splitlines(), start=1):
            if _ONLY_IN_DOCUMENTS.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert offenders == []

"""Post-processing of the Great Expectations Data Docs site, after ``build_data_docs()``.

GE's pages load Bootstrap, bootstrap-table, jQuery, Font Awesome and Vega from CDNs, and the
index builds its tables in the browser from inline data with bootstrap-table: offline (or
behind a proxy) the index is an empty page. :func:`finish_site`

* removes every ``<link>``/``<script>`` that points at ``http(s)://`` and the logo image
  served from GE's S3 bucket (replaced by the copy GE ships in ``static/images``);
* renders the index's bootstrap-table tables as plain HTML tables (each row links to its
  page), so the index works without JavaScript;
* writes one small local stylesheet (:data:`OFFLINE_CSS`, ``static/styles/twotower_offline.css``)
  for the layout, the tables and the status icons, linked from every page by a relative path;
* adds to each validation page a section "Example offending rows" for its failed checks: the
  checks run on derived flag columns (``dq_<check>``), so GE's own page could only show the
  flag's ``True``; this table shows example rows with the real column first.

Pure file work: no GE import, no Spark.
"""

from __future__ import annotations

import ast
import html
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from quality.runner import CheckResult

OFFLINE_CSS_PATH = Path("static") / "styles" / "twotower_offline.css"
LOGO_PATH = Path("static") / "images" / "logo-long.png"
EXAMPLES_ID = "twotower-offending-rows"

_REMOTE_TAG = re.compile(
    r"<link\b[^>]*\bhref=\"https?://[^\"]*\"[^>]*>|<script\b[^>]*\bsrc=\"https?://[^\"]*\"[^>]*>\s*</script>",
    re.IGNORECASE,
)
_REMOTE_IMG = re.compile(r"(<img\b[^>]*?\bsrc=\")https?://[^\"]*(\")", re.IGNORECASE | re.DOTALL)
_TABLE_SCRIPT = re.compile(
    r"<script>\s*\$\('#(?P<id>[^']+)'\)\.bootstrapTable\(\s*Object\.assign\(\s*\{\s*"
    r"columns: (?P<columns>.*?),\s*\n\s*data: (?P<data>.*?),\s*\n\s*toolbar:.*?</script>",
    re.DOTALL,
)
_LOCAL_STATIC = re.compile(r"(<(?:link|script|img)\b[^>]*?\b(?:href|src)=\")(?:\.\./|\./)*static/([^\"]*)(\")", re.I | re.S)
# The page's main column (after GE's navigation sidebar).
_MAIN_COLUMN = re.compile(r"<div class=\"col-md-10[^\"]*\">")

OFFLINE_CSS = """\
/* twotower: the subset of Bootstrap/Font Awesome the Data Docs pages need, served locally. */
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       font-size: 14px; color: #212529; margin: 0; }
a { color: #0056b3; }
table { border-collapse: collapse; margin: .25rem 0; }
th, td { border: 1px solid #dee2e6; padding: .2rem .5rem; vertical-align: top; text-align: left; }
thead th, .twotower-static-table th { background: #f1f3f5; }
.row { display: flex; flex-wrap: wrap; }
.col-12 { flex: 0 0 100%; max-width: 100%; }
.col-6 { flex: 0 0 50%; max-width: 50%; }
@media (min-width: 768px) {
  .col-md-2 { flex: 0 0 16.66%; max-width: 16.66%; }
  .col-md-10 { flex: 0 0 83.33%; max-width: 83.33%; }
}
.container-fluid { padding: 0 1rem; box-sizing: border-box; width: 100%; }
.navbar { display: flex; align-items: center; padding: 0 1rem; border-bottom: 1px solid #dee2e6; }
.d-none { display: none; }
.d-none.d-md-inline-flex { display: inline-flex; }
.breadcrumb { list-style: none; padding: 0 .5rem; }
.breadcrumb-item + .breadcrumb-item::before { content: "/"; padding: 0 .4em; }
.alert { padding: .5rem 1rem; border: 1px solid #d6d8db; background: #e2e3e5; margin: .5rem 0; }
.collapse, .tab-pane { display: block; }
.nav-tabs { list-style: none; display: flex; gap: 1rem; padding: 0; }
.cooltip .top, .btn { display: none; }
.text-success { color: #28a745; } .text-danger { color: #dc3545; } .text-info { color: #17a2b8; }
.fas, .far { font-style: normal; }
.fa-check-circle::before { content: "\\2714"; }
.fa-times::before { content: "\\2718"; }
.fa-comment::before { content: "\\2139"; }
.fa-question-circle::before { content: "?"; }
.badge { display: inline-block; padding: 0 .35em; border-radius: .25rem; background: #e9ecef;
         font-family: monospace; }
.twotower-examples { border: 2px solid #dc3545; padding: .5rem 1rem; margin: .5rem 0 1rem 0; }
.twotower-examples td.twotower-named { font-weight: bold; background: #fff3f3; }
"""


def finish_site(site: Path, results: Iterable[CheckResult] = ()) -> None:
    """Make the Data Docs site under ``site`` (the folder of ``index.html``) work offline and
    add the example offending rows of failed checks to their validation pages."""
    site = Path(site)
    css = site / OFFLINE_CSS_PATH
    css.parent.mkdir(parents=True, exist_ok=True)
    css.write_text(OFFLINE_CSS)
    by_suite: dict[str, list[CheckResult]] = {}
    for r in results:
        if not r.success and r.examples:
            by_suite.setdefault(r.suite, []).append(r)
    pages = {p: suite for suite in by_suite for p in _validation_pages(site, suite)}
    for page in sorted(site.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        rel = Path(os.path.relpath(site, page.parent))
        text = offline_html(text, rel)
        if page in pages:
            text = _insert_examples(text, by_suite[pages[page]])
        page.write_text(text, encoding="utf-8")


def _validation_pages(site: Path, suite: str) -> list[Path]:
    folder = (site / "validations").joinpath(*suite.split("."))
    return sorted(folder.rglob("*.html")) if folder.is_dir() else []


def offline_html(text: str, rel: Path) -> str:
    """One page without remote assets; ``rel`` is the path from the page's folder to the site root."""
    tables: dict[str, str] = {}

    def take(m: re.Match) -> str:
        # A bootstrap-table script: keep its columns/data as an HTML table for the empty
        # <table> it would fill, drop the script. Any other shape is left alone.
        try:
            tables[m["id"]] = render_table(m["id"], ast.literal_eval(m["columns"]), ast.literal_eval(m["data"]))
        except (ValueError, SyntaxError):
            return m[0]
        return ""

    text = _TABLE_SCRIPT.sub(take, text)
    text = re.sub(r"<table\s+id=\"(?P<id>[^\"]+)\"[^>]*>\s*</table>", lambda m: tables.pop(m["id"], m[0]), text)
    text = _REMOTE_TAG.sub("", text)
    text = _REMOTE_IMG.sub(lambda m: f"{m[1]}{(rel / LOGO_PATH).as_posix()}{m[2]}", text)
    # GE writes the favicon of validation pages one folder short: point every packaged
    # asset at the site's static/ folder from this page.
    text = _LOCAL_STATIC.sub(lambda m: f"{m[1]}{(rel / 'static').as_posix()}/{m[2]}{m[3]}", text)
    link = f'<link rel="stylesheet" href="{(rel / OFFLINE_CSS_PATH).as_posix()}">'
    return text if link in text else text.replace("</head>", f"{link}\n</head>", 1)


def render_table(table_id: str, columns: list[dict[str, Any]], data: list[dict[str, Any]]) -> str:
    """A bootstrap-table definition as plain HTML; the first plain-text cell of a row links to
    the row's page (``_table_row_link_path``), as a click on the row does in GE's index."""
    head = "".join(f"<th>{html.escape(str(c.get('title', c.get('field', ''))))}</th>" for c in columns)
    body = []
    for row in data:
        link = row.get("_table_row_link_path")
        cells = []
        for c in columns:
            value = row.get(c.get("field"), "")
            value = "" if value is None else str(value)
            if "<" in value:
                cells.append(f"<td>{value}</td>")  # GE's own markup (icons, links)
                continue
            value = html.escape(value.strip())
            if link:
                value, link = f'<a href="{html.escape(link)}">{value}</a>', None
            cells.append(f"<td>{value}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return (
        f'<table id="{html.escape(table_id)}" class="table-sm twotower-static-table">'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def examples_html(results: Iterable[CheckResult]) -> str:
    """The section listing example offending rows of failed checks (the named column first)."""
    parts = [f'<div id="{EXAMPLES_ID}" class="twotower-examples"><h3>Example offending rows</h3>']
    for r in results:
        column = r.check.column
        cols: list[str] = []
        for row in r.examples:
            cols.extend(k for k in row if k not in cols)
        if column in cols:
            cols.remove(column)
            cols.insert(0, column)
        count = f"{r.failing_count:,}" if r.failing_count is not None else "?"
        rows = f" of {r.rows:,}" if r.rows is not None else ""
        where = f", column <code>{html.escape(column)}</code>" if column else ""
        parts.append(
            f"<h4>check <code>{html.escape(r.check.name)}</code>{where}: {count}{rows} rows fail "
            f"({html.escape(r.check.problem)}); first {len(r.examples)}:</h4>"
        )
        head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
        body = "".join(
            "<tr>"
            + "".join(
                f'<td{" class=twotower-named" if c == column else ""}>{html.escape(_cell(row.get(c)))}</td>' for c in cols
            )
            + "</tr>"
            for row in r.examples
        )
        parts.append(f'<table class="twotower-static-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>')
    parts.append("</div>")
    return "\n".join(parts)


def _cell(value: Any) -> str:
    """A value as text; a string that is empty, padded or holds a control character is quoted
    (``' u2'``), so what makes it bad is visible."""
    if value is None:
        return "null"
    if isinstance(value, str) and (value != value.strip() or not value or not value.isprintable()):
        return repr(value)
    return str(value)


def _insert_examples(text: str, results: list[CheckResult]) -> str:
    section = examples_html(results)
    m = _MAIN_COLUMN.search(text)
    if m:
        return text[: m.end()] + "\n" + section + text[m.end() :]
    return re.sub(r"<body[^>]*>", lambda b: b[0] + "\n" + section, text, count=1)

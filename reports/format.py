"""Numbers and tables for people: the formatting shared by the run report and the runs index.

No Python reprs reach a page: ``None`` is a dash, floats are plain decimals (``180,600``, not
``1.806e+05``), lists of days are a range, seconds are minutes and seconds.
"""

from __future__ import annotations

import html
import math
import re
from typing import Any

DASH = "–"
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class Raw(str):
    """Already-escaped HTML (a link, a bold word): table helpers insert it as is."""


def e(s: Any) -> str:
    """HTML-escaped text (a :class:`Raw` passes through)."""
    return s if isinstance(s, Raw) else html.escape(str(s))


def num(v: Any, digits: int = 4) -> str:
    """A readable number: ints with thousands separators, floats with ``digits`` significant
    digits and never in scientific notation between 1e-4 and 1e15."""
    if v is None:
        return DASH
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if math.isnan(v):
            return DASH
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        a = abs(v)
        if a == 0:
            return "0"
        if a >= 1000:
            return f"{v:,.0f}"
        if a >= 1e-4:
            text = f"{v:.{digits}g}"
            if "e" in text:  # .4g of e.g. 999.96 gives "1000"; of 0.000123 "0.000123": both plain
                text = f"{v:.{digits}f}".rstrip("0").rstrip(".")
            return text
        return f"{v:.1e}"
    return str(v)


def pct(v: float | None, digits: int = 1) -> str:
    return DASH if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.{digits}f} %"


def dur(seconds: float | None) -> str:
    """``0.4 s``, ``56 s``, ``2 min 05 s``, ``1 h 02 min``."""
    if seconds is None:
        return DASH
    s = float(seconds)
    if s < 10:
        return f"{s:.1f} s"
    if s < 60:
        return f"{s:.0f} s"
    if s < 3600:
        m, r = divmod(round(s), 60)
        return f"{m} min {r:02d} s"
    h, r = divmod(round(s) // 60, 60)
    return f"{h} h {r:02d} min"


def value(v: Any, key: str = "") -> str:
    """Any recorded value as text: numbers via :func:`num`, durations for ``*seconds`` /
    ``*_s`` keys, lists shortened (days as a range), small dicts inline."""
    if isinstance(v, int | float) and not isinstance(v, bool) and (key.endswith(("seconds", "_s")) or key == "seconds"):
        return dur(v)
    if isinstance(v, list | tuple):
        return listing(v)
    if isinstance(v, dict):
        if not v:
            return DASH
        return "; ".join(f"{k}: {value(x, str(k))}" for k, x in v.items())
    if isinstance(v, str) and not v:
        return DASH
    return num(v)


def listing(items: list | tuple) -> str:
    """``2026-11-01 … 2026-11-07 (7 days)``; ``a, b, c``; ``40 values: 1, 2, 3, 4, 5, …``."""
    items = list(items)
    if not items:
        return "none"
    if all(isinstance(x, str) and _DAY.match(x) for x in items):
        if len(items) <= 3:
            return ", ".join(items)
        return f"{items[0]} … {items[-1]} ({len(items)} days)"
    if len(items) <= 8 and all(not isinstance(x, dict | list) for x in items):
        return ", ".join(value(x) for x in items)
    head = ", ".join(value(x) for x in items[:5] if not isinstance(x, dict | list))
    return f"{len(items)} values" + (f": {head}, …" if head else "")


def label(key: str) -> str:
    """A stats key as a column label: ``users_with_history`` -> ``users with history``."""
    return str(key).replace("_", " ")


def kv_table(rows: list[tuple[Any, Any]] | dict[str, Any], cls: str = "kv") -> str:
    """Two-column table; values that are not :class:`Raw` are formatted with :func:`value`."""
    items = rows.items() if isinstance(rows, dict) else rows
    body = "".join(
        f"<tr><td>{e(k)}</td><td>{v if isinstance(v, Raw) else e(value(v, str(k)))}</td></tr>" for k, v in items
    )
    return f'<table class="{cls}">{body}</table>'


def grid(header: list[str], rows: list[list[Any]], cls: str = "grid") -> str:
    """A table with a header row; cells that are not :class:`Raw` are formatted with :func:`value`."""
    head = "".join(f"<th>{e(h)}</th>" for h in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, Raw) else e(value(c))}</td>" for c in row) + "</tr>" for row in rows
    )
    return f'<table class="{cls}"><tr>{head}</tr>{body}</table>'


def flatten(d: Any, prefix: str = "", skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Nested stats as ``a › b`` keys (lists kept whole; :func:`value` shortens them)."""
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            if k in skip:
                continue
            out.update(flatten(v, f"{prefix}{k} › ", skip))
        return out
    return {prefix[: -len(" › ")] if prefix else "": d}


def details_table(d: dict[str, Any], skip: tuple[str, ...] = (), max_rows: int = 80) -> str:
    """Every recorded value of a stats dict, readable (for the folded *all values* blocks)."""
    flat = list(flatten(d, skip=skip).items())
    rows = [(label(k), Raw(e(value(v, k.rsplit(" › ", 1)[-1])))) for k, v in flat[:max_rows]]
    more = f"<p>… {len(flat) - max_rows} more values in the JSON file.</p>" if len(flat) > max_rows else ""
    return kv_table(rows) + more


def folded(title: str, body: str, open_: bool = False, cls: str = "") -> str:
    """A ``<details>`` block whose summary is an ``<h2>`` heading."""
    return (
        f'<details class="section {cls}"{" open" if open_ else ""}><summary><h2>{e(title)}</h2></summary>'
        f"{body}</details>"
    )


def sub_folded(title: str, body: str) -> str:
    return f'<details class="more"><summary>{e(title)}</summary>{body}</details>'


CSS = """body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1180px;margin:1.5em auto;
padding:0 1em;color:#1f2328;line-height:1.4}
h1{font-size:1.6em;margin:.2em 0}h2{font-size:1.25em;margin:.6em 0 .3em;padding-top:.5em;border-top:1px solid #d0d7de}summary>h2{display:inline;border:0;padding:0}h3{font-size:1.05em;margin:1em 0 .3em}
table{border-collapse:collapse;margin:.4em 0 .8em}td,th{border:1px solid #d0d7de;padding:3px 9px;text-align:left;
font-size:13px;vertical-align:top}th{background:#f6f8fa}td.n,th.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.ok{color:#1a7f37}.bad{color:#cf222e}.warn{color:#9a6700}
.status.published{color:#1a7f37}.status.failed,.status.rejected{color:#cf222e}.status.unknown{color:#57606a}
img{max-width:100%;border:1px solid #d0d7de;margin:.3em 0}
details.section{border-top:1px solid #d0d7de;padding:.6em 0}details.section>summary{cursor:pointer;margin-bottom:.4em}
details.more>summary{cursor:pointer;color:#0969da;font-size:13px;margin:.3em 0}
.summary{border:1px solid #d0d7de;border-radius:6px;padding:.8em 1.2em;margin:1em 0;background:#fbfcfd}
.summary.published{border-left:6px solid #1a7f37}.summary.failed,.summary.rejected{border-left:6px solid #cf222e}
.verdict{font-size:1.15em;margin:.2em 0 .6em}
.warnings{background:#fff8c5;border:1px solid #d4a72c;border-radius:6px;padding:.5em 1em;margin:.6em 0}
.warnings li{margin:.2em 0}.warnings h3{margin:.2em 0}
.bar{display:inline-block;height:10px;background:#54aeff;vertical-align:middle;margin-right:6px}
.muted{color:#57606a;font-size:12px}td.day{white-space:nowrap}#runs td{font-size:12px}.plots{display:grid;grid-template-columns:1fr 1fr;gap:.6em}
.plots figure{margin:0}.plots figcaption{font-size:13px;color:#57606a}"""


def page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f"<style>{CSS}</style></head><body>{body}</body></html>\n"
    )

"""The run report and the runs index as a real headless Chromium renders them: the summary is
there and every plot decodes to an image with pixels (checked from inside the browser, through a
frame of the page), and screenshots are taken."""

from __future__ import annotations

import json
import re

import pytest

from reports.browser import dump_dom, find_chromium, screenshot
from reports.run_report import build_run_report
from storage.layout import Layout
from tests.conftest import make_config
from tests.test_report_summary import DAYS, write_day

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        find_chromium() is None, reason="no headless Chromium on PATH (apt-get install chromium; .ci/run installs it)"
    ),
]

# Loads a page in a frame and writes what the browser made of it into #out (needs
# --allow-file-access-from-files: file:// frames are otherwise cross-origin).
PROBE = """<!doctype html><html><body><pre id="out">pending</pre>
<iframe id="f" src="{src}" width="1280" height="2000"></iframe>
<script>
document.getElementById("f").onload = function () {{
  var d = this.contentDocument;
  var imgs = Array.prototype.map.call(d.images, function (i) {{
    return {{alt: i.alt, ok: i.complete && i.naturalWidth > 0 && i.naturalHeight > 0}};
  }});
  var s = d.getElementById("summary");
  document.getElementById("out").textContent = JSON.stringify({{
    summary: s ? s.innerText : null,
    warnings: Array.prototype.map.call(d.querySelectorAll(".warnings li"), function (li) {{ return li.innerText; }}),
    imgs: imgs, rows: d.querySelectorAll("#runs tr").length
  }});
}};
</script></body></html>"""


def _probe(root, page: str) -> dict:
    probe = root / "probe.html"
    probe.write_text(PROBE.format(src=page))
    dom = dump_dom(probe, file_access=True)
    m = re.search(r'<pre id="out">(.*?)</pre>', dom, re.S)
    assert m and m.group(1) != "pending", dom[:2000]
    return json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">"))


def _not_blank(png) -> bool:
    import matplotlib.image as mpimg

    pixels = mpimg.imread(str(png))
    return pixels.shape[0] > 100 and float(pixels[..., :3].std()) > 0.05


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    cfg = make_config(root)
    layout = Layout(cfg.paths)
    for i, d in enumerate(DAYS):
        write_day(layout, d, impressions=20_000 + 500 * i, clicks=1_700, model=0.5 + 0.02 * i, baseline=0.53,
                  cold=0.0017 if i == 2 else 0.2, published=i != 1)
        build_run_report(cfg, d)
    return layout


def test_report_renders_summary_warnings_and_plots(reports, tmp_path):
    seen = _probe(reports.reports_root, f"ds={DAYS[2]}/report.html")
    assert seen["summary"].startswith("Status: published")
    assert "recall@50 (held-out day)\t0.5400 ± 0.0180 (SE) vs best baseline popularity_7d 0.5300" in seen["summary"]
    assert any("Cold-item recall@50 is 0.0017 against the oracle's 0.7410" in w for w in seen["warnings"])
    alts = {i["alt"]: i["ok"] for i in seen["imgs"]}
    assert alts.get("evaluation vs baselines") is True, seen["imgs"]
    png = screenshot(reports.report_dir(DAYS[2]) / "report.html", tmp_path / "report.png", height=1800)
    assert _not_blank(png)


def test_refused_day_renders_the_reason(reports):
    seen = _probe(reports.reports_root, f"ds={DAYS[1]}/report.html")
    assert seen["summary"].startswith("Status: rejected - not published: the publish gate refused the candidate")
    assert "candidate for ds=2026-11-02 not published" in seen["summary"]


def test_runs_index_renders_every_trend_plot(reports, tmp_path):
    seen = _probe(reports.reports_root, "index.html")
    assert len(seen["imgs"]) == 5 and all(i["ok"] for i in seen["imgs"]), seen["imgs"]
    assert seen["rows"] == 1 + len(DAYS)  # header + one row per day
    assert _not_blank(screenshot(reports.reports_root / "index.html", tmp_path / "index.png", height=1600))

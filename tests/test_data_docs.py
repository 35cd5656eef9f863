"""Data Docs of a gate run (real GE on real Spark): offline assets, run name, data asset,
example offending values of a failed check.

A tiny impressions partition of 4 rows, one of which has a malformed ``user_id`` (" u2", a
leading space): the rows suite's ``malformed_user_id`` check fails on 1 of 4 rows and runs on
the flag column ``dq_malformed_user_id``, so only the added example table can show " u2".
"""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pytest

from contracts.schemas import IMPRESSIONS
from core.config import Config
from quality import docs
from quality.contract_suites import contract_suite
from quality.raw_suites import raw_rows_suite
from quality.runner import GxProject

pytestmark = pytest.mark.spark

DS = "2026-11-04"
T = dt.datetime(2026, 11, 4, 10, tzinfo=dt.UTC)

ROWS = [
    # request, user, item, ts, position, clicked, liked, dwell
    ("r1", "u1", "i1", T, 0, True, None, None),
    ("r1", "u1", "i2", T, 1, False, None, None),
    ("r2", " u2", "i1", T, 0, False, None, None),  # malformed_user_id: leading space
    ("r2", "u3", "i3", T, 1, False, None, None),
]

# Asset references of a page: stylesheets, scripts, images, icons (not <a> navigation links).
_ASSET = re.compile(r"<(?:link|script|img)\b[^>]*?\b(?:href|src)=\"([^\"]*)\"", re.IGNORECASE | re.DOTALL)


@pytest.fixture(scope="module")
def site(spark, tmp_path_factory):
    from pyspark.sql import types as Ty

    schema = Ty.StructType([Ty.StructField(f.name, f.dataType, True) for f in IMPRESSIONS.spark_schema().fields])
    df = spark.createDataFrame(ROWS, schema)
    suites = [
        contract_suite(IMPRESSIONS, df, DS, "validate_raw"),
        raw_rows_suite(IMPRESSIONS, df, DS, Config()),
    ]
    root = tmp_path_factory.mktemp("gx")
    project = GxProject(root)
    results = {r.check.name: r for r in project.run(suites)}
    project.build_docs()
    return project.site_dir, suites, results


def test_pages_reference_no_remote_asset_and_local_assets_exist(site):
    site_dir, _, _ = site
    pages = sorted(site_dir.rglob("*.html"))
    # index + 2 suite pages + 2 validation pages
    assert len(pages) == 5, pages
    for page in pages:
        text = page.read_text()
        refs = _ASSET.findall(text)
        assert refs, page
        remote = [r for r in refs if r.startswith(("http://", "https://", "//"))]
        assert remote == [], (page, remote)
        for ref in refs:
            assert (page.parent / ref.split("?")[0]).resolve().is_file(), (page, ref)
        assert (docs.OFFLINE_CSS_PATH.as_posix()) in text


def test_index_lists_validations_without_javascript(site):
    site_dir, _, _ = site
    index = (site_dir / "index.html").read_text()
    links = re.findall(r"<a href=\"(validations/[^\"]+\.html)\"", index)
    # one row per validation (contract, rows), each linking to an existing page
    assert len(links) == 2, links
    for link in links:
        assert (site_dir / link).is_file(), link
    assert "bootstrapTable(\n" not in index  # the table-building scripts are gone


def test_run_name_is_the_day_and_asset_is_the_table(site):
    site_dir, suites, _ = site
    gx_dir = site_dir.parents[2]  # .../gx (uncommitted/data_docs/local_site)
    stored = sorted((gx_dir / "uncommitted" / "validations").rglob("*.json"))
    assert len(stored) == 2
    for path in stored:
        meta = json.loads(path.read_text())["meta"]
        assert meta["run_id"]["run_name"] == DS
        assert meta["active_batch_definition"]["data_asset_name"] == "impressions"
        assert meta["batch_spec"]["data_asset_name"] == "impressions"
    for suite in suites:
        (page,) = docs._validation_pages(site_dir, suite.name)
        assert f"/{DS}/" in page.as_posix()
        text = re.sub(r"<[^>]+>|\s+", " ", page.read_text())  # the page's text
        assert re.search(r"Data asset: impressions Status:", re.sub(r"\s+", " ", text)), page
        assert f"Run Name {DS} " in re.sub(r"\s+", " ", text)
    index = (site_dir / "index.html").read_text()
    assert "__none__" not in index
    assert f"<td>{DS}</td><td>impressions</td>" in index  # Run Name, Asset Name columns


def test_failed_check_page_shows_the_offending_value(site):
    site_dir, suites, results = site
    r = results["malformed_user_id"]
    assert not r.success and r.failing_count == 1 and r.rows == 4
    assert r.examples[0]["user_id"] == " u2"
    (page,) = docs._validation_pages(site_dir, suites[1].name)
    text = page.read_text()
    assert docs.EXAMPLES_ID in text
    section = text[text.index(docs.EXAMPLES_ID) :]
    section = section[: section.index("</div>")]
    assert "check <code>malformed_user_id</code>, column <code>user_id</code>: 1 of 4 rows fail" in section
    # the named column comes first, its value quoted so that the leading space shows
    assert "<th>user_id</th>" in section.split("<tr>")[1]
    assert f"<td class=twotower-named>{html.escape(repr(' u2'))}</td>" in section
    # the contract page (all checks passed) has no such section
    (contract_page,) = docs._validation_pages(site_dir, suites[0].name)
    assert docs.EXAMPLES_ID not in contract_page.read_text()


def test_offline_html_rewrites_cdn_tags():
    page = (
        "<html><head>"
        '<link rel="stylesheet" href="https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css"/>\n'
        '<script src="https://code.jquery.com/jquery-3.7.1.min.js"></script>\n'
        '<link rel="shortcut icon" href="../static/images/favicon.ico"/>'
        "</head><body>"
        '<img class="NO-CACHE" src="https://great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png?d=1"/>'
        '<a href="https://greatexpectations.io">GE</a>'
        "</body></html>"
    )
    out = docs.offline_html(page, Path(".."))
    assert _ASSET.findall(out) == [
        "../static/images/favicon.ico",
        "../static/styles/twotower_offline.css",
        "../static/images/logo-long.png",
    ]
    assert '<a href="https://greatexpectations.io">GE</a>' in out  # a link, not an asset: kept

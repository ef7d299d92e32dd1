"""The self-contained HTML report, checked in headless Chromium."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

sys.path.insert(0, str(Path(__file__).parent))
from slim_leakage.errors import RunError  # noqa: E402
from slim_leakage.report import render_report  # noqa: E402
from slim_leakage.run import evaluate  # noqa: E402
from test_run import ScriptedJudge, config  # noqa: E402


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("report")
    evaluate(config(tmp, method="instruction-prompt"), judge=ScriptedJudge())
    return tmp / "run"


def test_report_is_self_contained(finished_run):
    html = (finished_run / "report.html").read_text()
    assert "http://" not in html and "https://" not in html  # nothing to fetch
    assert html.count('src="data:image/png;base64,') >= 8  # vanilla + method for 4 samples
    # the judge's usage, summed from the stage records (the scripted judge makes 1 call each)
    assert "<tr><th>judge calls</th><td>4</td></tr>" in html
    assert "<tr><th>judge tokens in / out / thinking</th><td>0 / 0 / 0</td></tr>" in html


def test_report_rows_and_filter_in_chromium(finished_run, chromium_dom):
    url = (finished_run / "report.html").resolve().as_uri()
    dom = chromium_dom(url)
    rows = re.findall(r'<tr data-label="([a-z-]+)"', dom)
    assert len(rows) == 4
    assert "4 of 4 samples shown" in dom  # the page's script ran
    label = rows[0]
    filtered = chromium_dom(url + f"#label={label}")
    shown = sum(1 for lab in rows if lab == label)
    assert f"{shown} of 4 samples shown" in filtered
    hidden = re.findall(r'<tr data-label="([a-z-]+)" style="display: none;"', filtered)
    assert len(hidden) == 4 - shown and label not in hidden


def test_report_needs_metrics(tmp_path):
    with pytest.raises(RunError, match="no metrics.json"):
        render_report(tmp_path)


def _links(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#:]+)"', page)


def test_thumbnail_report_links_resolve_and_stays_small(finished_run, chromium_dom, tmp_path):
    from slim_leakage.report import write_report

    embedded = (finished_run / "report.html").stat().st_size
    path = write_report(finished_run, tmp_path / "elsewhere" / "report.html", images="thumbnails")
    page = path.read_text()
    assert "data:image" not in page  # nothing embedded
    links = _links(page)
    thumbs = [u for u in links if "/thumbs/" in u]
    fulls = [u for u in links if "/images/" in u and "/thumbs/" not in u]
    assert len(thumbs) >= 8 and len(fulls) == len(thumbs)
    for link in links:  # every link, relative to the page's folder, is a file of the run
        target = (path.parent / link).resolve()
        assert target.is_file(), link
        assert target.is_relative_to(finished_run.resolve()), link
    # the page without its images is smaller than the page with them, per row
    assert len(page.encode()) < embedded
    assert len(page.encode()) / 4 < 3_000  # bytes per sample row, thumbnails linked
    dom = chromium_dom(path.resolve().as_uri())
    assert "4 of 4 samples shown" in dom
    assert 'data-images-broken="0"' in dom  # every thumbnail the page loaded decoded


def test_auto_embeds_small_runs_and_links_large_ones(finished_run, monkeypatch):
    from slim_leakage import report

    assert 'src="data:image/png;base64,' in report.render_report(finished_run)
    monkeypatch.setattr(report, "EMBED_MAX_SAMPLES", 3)
    page = report.render_report(finished_run)
    assert "data:image" not in page and 'src="thumbs/images/' in page


def test_a_thumbnail_of_a_512_image_is_small_and_kept(tmp_path):
    import os

    import numpy as np
    from PIL import Image

    from slim_leakage.report import THUMB_SIZE, make_thumbnail

    # noise: the worst case for JPEG, so a drawn image only does better
    pixels = np.random.default_rng(0).integers(0, 256, (512, 512, 3), dtype=np.uint8)
    source = tmp_path / "a.png"
    Image.fromarray(pixels).save(source)
    target = tmp_path / "thumbs" / "a.jpg"
    assert make_thumbnail(source, target) == (THUMB_SIZE, THUMB_SIZE)
    assert target.stat().st_size < 8_000
    with Image.open(target) as thumb:
        assert thumb.format == "JPEG" and thumb.size == (THUMB_SIZE, THUMB_SIZE)
    # kept while newer than its source: not written again
    stamp = target.stat().st_mtime_ns
    make_thumbnail(source, target)
    assert target.stat().st_mtime_ns == stamp
    os.utime(source, ns=(stamp + 10**9, stamp + 10**9))
    make_thumbnail(source, target)
    assert target.stat().st_mtime_ns != stamp


def test_an_unknown_image_mode_is_named(finished_run):
    from slim_leakage.errors import ConfigError

    with pytest.raises(ConfigError, match="images='inline' is not one of auto, embed"):
        render_report(finished_run, images="inline")

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

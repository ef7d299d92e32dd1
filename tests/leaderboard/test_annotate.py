import json
import time

import pytest

from slim_leakage.annotate.server import (
    CHOICES,
    AnnotationSession,
    choice_to_label,
    method_side,
)
from slim_leakage.errors import UsageError, ValidationError
from slim_leakage.judge.agreement import read_labels
from slim_leakage.records import LABELS
from slim_leakage.rundir import load_run


def test_answers_map_to_method_relative_labels():
    assert [choice_to_label(c, "left") for c in CHOICES] == list(LABELS)
    assert [choice_to_label(c, "right") for c in CHOICES] == list(reversed(LABELS))


def test_order_is_fixed_per_annotator_and_sample_and_balanced():
    sides = [method_side(0, "ann", f"s{i}") for i in range(400)]
    assert sides == [method_side(0, "ann", f"s{i}") for i in range(400)]
    assert 150 < sides.count("left") < 250
    assert sides != [method_side(0, "bob", f"s{i}") for i in range(400)]


def test_session_appends_rows_and_resumes(run_factory, tmp_path):
    run = load_run(run_factory(n=3))
    labels = tmp_path / "labels.csv"
    s = AnnotationSession(run, labels, "ann")
    assert s.state()["item"]["sample_id"] == "p000"
    side = method_side(0, "ann", "p000")
    assert s.answer("p000", "left-major") == (
        "mitigation-major" if side == "left" else "degradation-major"
    )
    with pytest.raises(ValidationError, match="already labelled"):
        s.answer("p000", "same")
    with pytest.raises(ValidationError, match="Unknown answer 'best'"):
        s.answer("p001", "best")
    assert [lab.sample_id for lab in read_labels(labels)] == ["p000"]
    log = [
        json.loads(line) for line in (tmp_path / "labels.csv.log.jsonl").read_text().splitlines()
    ]
    assert log[0]["method_side"] == side and log[0]["choice"] == "left-major"

    again = AnnotationSession(run, labels, "ann")
    assert again.pending() == ["p001", "p002"]
    assert AnnotationSession(run, labels, "bob").pending() == ["p000", "p001", "p002"]
    # the image on the method's side is the method image
    assert s.image("p000", side) == run.image_path("p000", "method")


def test_session_rejects_bad_names_and_empty_runs(run_factory, tmp_path):
    run = load_run(run_factory(n=2))
    with pytest.raises(UsageError, match="Annotator name"):
        AnnotationSession(run, tmp_path / "l.csv", "a,b")
    for p in (run.path / "images" / "deleaker").iterdir():
        p.unlink()
    with pytest.raises(UsageError, match="no sample with both"):
        AnnotationSession(load_run(run.path), tmp_path / "l.csv", "ann")


def test_label_by_click_and_keyboard_in_chromium(run_factory, tmp_path, page, serve):
    run = load_run(run_factory(n=3))
    labels = tmp_path / "labels.csv"
    session = AnnotationSession(run, labels, "ann", seed=4, min_view_s=0.3)
    url = serve(session)
    page.goto(url)
    page.wait_for("document.body.dataset.sample === 'p000' && document.body.dataset.ready")
    assert page.eval("document.getElementById('prompt').textContent") == run.samples[0].prompt
    # both images really load (decoded by the browser, 8x8 pixels)
    page.wait_for(
        "['left','right'].every(id => document.getElementById(id).complete && "
        "document.getElementById(id).naturalWidth === 8)"
    )
    page.click("button[data-choice='left-minor']")
    page.wait_for("document.body.dataset.sample === 'p001' && document.body.dataset.ready")
    page.press("5")
    page.wait_for("document.body.dataset.sample === 'p002'")
    rows = read_labels(labels)
    assert [(r.sample_id, r.annotator, r.method) for r in rows] == [
        ("p000", "ann", "deleaker"),
        ("p001", "ann", "deleaker"),
    ]
    assert rows[0].label == choice_to_label("left-minor", method_side(4, "ann", "p000"))
    assert rows[1].label == choice_to_label("right-major", method_side(4, "ann", "p001"))
    assert "2 of 3" in page.eval("document.getElementById('status').textContent")


def test_resume_and_finish_in_chromium(run_factory, tmp_path, browser, serve):
    run = load_run(run_factory(n=2))
    labels = tmp_path / "labels.csv"
    AnnotationSession(run, labels, "ann").answer("p000", "same")
    url = serve(AnnotationSession(run, labels, "ann"))
    page = browser.new_page()
    try:
        page.goto(url)
        page.wait_for("document.body.dataset.sample === 'p001' && document.body.dataset.ready")
        page.press("3")
        page.wait_for("!document.getElementById('finished').hidden")
        assert page.eval("document.getElementById('task').hidden") is True
    finally:
        page.close()
    assert [(r.sample_id, r.label) for r in read_labels(labels)] == [
        ("p000", "no-change"),
        ("p001", "no-change"),
    ]


def test_annotate_cli_serves_on_localhost(run_factory, tmp_path):
    import subprocess
    import sys
    import urllib.request

    run = run_factory(n=2)
    labels = tmp_path / "labels.csv"
    proc = subprocess.Popen(
        [sys.executable, "-m", "slim_leakage.cli", "annotate", str(run), "--annotator", "ann"]
        + ["--labels", str(labels), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = proc.stdout.readline()
        second = proc.stdout.readline()
        assert "2 of 2 samples left" in first, first + proc.stderr.read()
        url = second.split()[1]
        assert url.startswith("http://127.0.0.1:")
        with urllib.request.urlopen(url + "api/state", timeout=10) as res:
            state = json.loads(res.read())
        assert state["item"]["sample_id"] == "p000" and state["total"] == 2
        body = json.dumps({"sample_id": "p000", "choice": "same"}).encode()
        req = urllib.request.Request(url + "api/label", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:  # a form post: never taken
            urllib.request.urlopen(req, timeout=10)
        assert err.value.code == 403
        time.sleep(0.4)  # the sample has been on screen long enough to be answered
        req = urllib.request.Request(
            url + "api/label", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as res:
            assert json.loads(res.read())["label"] == "no-change"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url + "image/p000/../../manifest.json", timeout=10)
        assert err.value.code == 404
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    assert [(r.sample_id, r.label) for r in read_labels(labels)] == [("p000", "no-change")]


def test_annotate_cli_usage_errors(run_factory, tmp_path, cli):
    run = run_factory(n=1)
    code, _, err = cli("annotate", str(run), "--annotator", "a,b", "--labels", str(tmp_path / "l"))
    assert code == 2 and "Annotator name" in err
    code, _, err = cli("annotate", str(run), "--annotator", "a", "--port", "70000")
    assert code == 2 and "--port 70000" in err

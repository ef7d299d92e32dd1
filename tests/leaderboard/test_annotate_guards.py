"""The labelling page: one answer per shown sample, undo, one writer per labels file, the toy
legend, and same-origin JSON only."""

from __future__ import annotations

import http.client
import json
import time
from urllib.parse import urlsplit

import pytest

from slim_leakage.annotate.guards import request_problem
from slim_leakage.annotate.server import AnnotationSession
from slim_leakage.errors import ValidationError
from slim_leakage.judge.agreement import read_labels
from slim_leakage.rundir import load_run


def _port(url: str) -> int:
    return urlsplit(url).port


def _post(port: int, path: str, body: bytes, headers: dict) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers=headers)
        res = conn.getresponse()
        return res.status, json.loads(res.read() or b"{}")
    finally:
        conn.close()


def test_only_same_origin_json_is_taken(run_factory, tmp_path, serve):
    run = load_run(run_factory(n=2))
    labels = tmp_path / "labels.csv"
    port = _port(serve(AnnotationSession(run, labels, "ann")))
    body = json.dumps({"sample_id": "p000", "choice": "same"}).encode()
    own = f"http://127.0.0.1:{port}"
    refused = [
        {"Content-Type": "text/plain"},  # a "simple" cross-site request needs no preflight
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Content-Type": "application/json", "Origin": "http://evil.example"},
        {"Content-Type": "application/json", "Origin": "http://127.0.0.1:1"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"},
        {"Content-Type": "application/json", "Sec-Fetch-Site": "same-site"},
        {"Content-Type": "application/json", "Host": "evil.example"},
    ]
    for headers in refused:
        status, data = _post(port, "/api/label", body, headers)
        assert status == 403 and data["error"].startswith("refused"), headers
        status, _ = _post(port, "/api/undo", b"{}", headers)
        assert status == 403
    assert not labels.exists() or read_labels(labels) == []
    status, data = _post(
        port,
        "/api/label",
        body,
        {"Content-Type": "application/json; charset=utf-8", "Origin": own,
         "Sec-Fetch-Site": "same-origin"},
    )  # fmt: skip
    assert status == 200 and data["label"] == "no-change"


def test_request_problem_takes_a_non_browser_client():
    assert request_problem({"Content-Type": "application/json"}, 80) is None
    assert request_problem({"Content-Type": "application/json", "Host": "localhost:80"}, 80) is None


def test_an_answer_before_the_sample_was_shown_long_enough_is_refused(run_factory, tmp_path):
    run = load_run(run_factory(n=3))
    session = AnnotationSession(run, tmp_path / "l.csv", "ann", min_view_s=0.2)
    with pytest.raises(ValidationError, match="before it was shown"):
        session.answer("p001", "same")  # never shown
    session.state()
    with pytest.raises(ValidationError, match="double click"):
        session.answer("p000", "same")
    time.sleep(0.25)
    session.answer("p000", "same")


def test_undo_takes_back_the_last_answer_only(run_factory, tmp_path):
    run = load_run(run_factory(n=3))
    labels = tmp_path / "labels.csv"
    session = AnnotationSession(run, labels, "ann")
    with pytest.raises(ValidationError, match="no answer of this session"):
        session.undo()
    session.answer("p000", "same")
    session.answer("p001", "left-major")
    assert session.undo() == "p001"
    assert [r.sample_id for r in read_labels(labels)] == ["p000"]
    assert session.state()["item"]["sample_id"] == "p001"
    log = [json.loads(x) for x in (tmp_path / "labels.csv.log.jsonl").read_text().splitlines()]
    assert log[-1]["undo"] is True and log[-1]["sample_id"] == "p001"


def test_two_sessions_on_one_labels_file_never_label_a_sample_twice(run_factory, tmp_path):
    run = load_run(run_factory(n=2))
    labels = tmp_path / "labels.csv"
    first = AnnotationSession(run, labels, "ann")
    second = AnnotationSession(run, labels, "ann")
    first.answer("p000", "left-major")
    with pytest.raises(ValidationError, match="already labelled"):
        second.answer("p000", "right-major")
    assert [r.sample_id for r in read_labels(labels)] == ["p000"]
    assert (tmp_path / "labels.csv.lock").exists()


def test_double_click_undo_in_chromium(run_factory, tmp_path, page, serve):
    run = load_run(run_factory(n=3))
    labels = tmp_path / "labels.csv"
    port = _port(serve(AnnotationSession(run, labels, "ann", min_view_s=0.3)))
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for("document.body.dataset.sample === 'p000' && document.body.dataset.ready")
    # a double click: the second click lands while the next sample is being shown
    page.eval(
        "(() => { const b = document.querySelector(\"button[data-choice='same']\");"
        " b.click(); setTimeout(() => b.click(), 60); setTimeout(() => b.click(), 180);"
        " return 1; })()"
    )
    page.wait_for("document.body.dataset.sample === 'p001' && document.body.dataset.ready")
    time.sleep(0.3)
    assert [r.sample_id for r in read_labels(labels)] == ["p000"]
    page.press("u")
    page.wait_for("document.body.dataset.sample === 'p000' && document.body.dataset.ready")
    assert read_labels(labels) == []
    assert page.eval("document.getElementById('legend').hidden") is True  # not toy words


def test_toy_samples_show_each_entitys_pattern(tmp_path, page, serve):
    pytest.importorskip("diffusers")
    from slim_leakage.cli.main import main

    out = tmp_path / "toy"
    argv = ["--method", "vanilla", "--judge", "none", "--limit", "1", "--out", str(out),
            "--no-progress", "--image-metrics", "none", "--no-references"]  # fmt: skip
    assert main(argv) == 0
    session = AnnotationSession(load_run(out), tmp_path / "l.csv", "ann")
    legend = session.state()["item"]["legend"]
    assert [e["entity"] for e in legend] == list(load_run(out).samples[0].entities)
    port = _port(serve(session))
    page.goto(f"http://127.0.0.1:{port}/")
    page.wait_for("document.querySelectorAll('#legend img').length === 2")
    page.wait_for(
        "[...document.querySelectorAll('#legend img')].every(i => i.complete && "
        "i.naturalWidth === 64)"
    )
    captions = page.eval(
        "[...document.querySelectorAll('#legend figcaption')].map(c => c.textContent)"
    )
    assert all(legend[i]["pattern"] in captions[i] for i in range(2))

import copy
import json

import pytest

from slim_leakage.errors import ValidationError
from slim_leakage.leaderboard.build import build_entry
from slim_leakage.leaderboard.render import (
    collect,
    markdown_table,
    rank_rows,
    render,
    update_readme,
)
from slim_leakage.leaderboard.validate import ValidationReport, validate_entry
from slim_leakage.leaderboard.verification import Verification
from slim_leakage.rundir import load_run

from .conftest import sign_verification

GOOD = ["mitigation-major"] * 6 + ["mitigation-minor", "no-change", "no-change", "no-change"]
WEAK = ["mitigation-minor", "no-change", "degradation-major", "degradation-minor"] * 2 + [
    "no-change",
    "mitigation-major",
]
OTHER_JUDGE = {"backend": "openai", "model_id": "gpt-x", "prompt_versions": {"ranking": "v1"}}


@pytest.fixture
def board(run_factory, tmp_path, maintainers, fake_slim):
    """A leaderboard folder: DeLeaker verified by a signed record, a second entry by another
    judge (unverified), the maintainers' throwaway key installed."""
    folder = maintainers.install(tmp_path / "leaderboard")
    (folder / "entries").mkdir()
    good_run = run_factory("good", labels=GOOD)
    good = build_entry(
        load_run(good_run), name="DeLeaker", submitted="2026-11-28", submitter="tests"
    )
    weak = build_entry(
        load_run(run_factory("weak", method="instruction-prompt", labels=WEAK)),
        name="Instruction | prompt",
        submitted="2026-11-28",
        submitter="tests",
    )
    (folder / "entries" / "deleaker.json").write_text(json.dumps(good, indent=2))
    (folder / "entries" / "instruction.json").write_text(json.dumps(weak, indent=2))
    sign_verification(
        folder / "entries" / "deleaker.json", good_run, maintainers, dataset=fake_slim
    )
    return folder


def _render(board, tmp_path, maintainers, fake_slim):
    return render(board, tmp_path / "site", dataset=fake_slim, pinned=maintainers.pinned)


def test_render_writes_page_and_table(board, tmp_path, maintainers, fake_slim):
    rows = _render(board, tmp_path, maintainers, fake_slim)
    assert [r.entry["name"] for r in rows] == ["DeLeaker", "Instruction | prompt"]
    assert [r.report.status for r in rows] == ["verified", "unverified"]
    assert [r.rank for r in rows] == [1, None]
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    lines = md.splitlines()
    assert lines[0] == "**pairs, judged by the slim pin (gemini/gemini-3.6-flash)**"
    assert lines[2].startswith("| Rank | Method |") and len(lines) == 6
    # 7 of 10 samples are mitigations, none a degradation: net +70.0%; the backbone was
    # regenerated, so it carries no mark; timings and memory do
    assert lines[4] == (
        "| 1 | DeLeaker (by tests) | tiny-random | pairs (10) | +70.0% \\[+40.0%, +90.0%\\] | 70.0% "
        "| 30.0% | 0.0% | 0 | n/a | 0.75 s (self-reported) | 1 KiB (self-reported) | n/a | "
        "0.1.0 (self-reported) | verified |"
    ), lines[4]
    assert lines[5].startswith(
        "| - | Instruction \\| prompt (by tests) | tiny-random (self-reported) |"
    )
    assert "unverified; not ranked: no verification record" in lines[5]
    assert markdown_table([]) == "_No entries yet._\n"


def test_the_judge_cost_is_shown_as_self_reported_and_range_checked(board, fake_slim):
    from slim_leakage.leaderboard.render import figure_texts

    path = board / "entries" / "deleaker.json"
    entry = json.loads(path.read_text())
    entry["cost"]["judge"] = {
        "calls": 60,
        "input_tokens": 90000,
        "output_tokens": 3000,
        "thinking_tokens": 24000,
        "cost_usd": 0.3375,
    }
    report = validate_entry(entry, dataset=fake_slim)
    assert report.ok, report.problems
    path.write_text(json.dumps(entry, indent=2))
    rows = render(board, board / "site", dataset=fake_slim)
    d = rows[[r.entry["name"] for r in rows].index("DeLeaker")].to_dict()
    assert figure_texts(d)["judge_cost"] == "$0.3375 (self-reported)"
    assert "$0.3375" in (board / "site" / "index.html").read_text()
    entry["cost"]["judge"]["thinking_tokens"] = -5
    problems = validate_entry(entry, dataset=fake_slim).problems
    assert any("cost.judge.thinking_tokens: -5 is below 0" in p for p in problems), problems


def _row(name, labels, *, status="verified", judge_errors=0):
    from slim_leakage.leaderboard.render import Row

    entry = {
        "name": name,
        "verdicts": [{"label": label} for label in labels],
    }
    report = ValidationReport(
        verification=Verification(status, () if status == "verified" else ("x",))
    )
    if status != "verified":
        report.unranked.append("x")
    if judge_errors:
        report.unranked.append("judge errors exceed the limit")
    return Row(f"{name}.json", entry, report)


def test_rank_is_by_net_mitigation_not_by_mitigation_alone():
    n = 96
    # the toy entries' shares: instruction-prompt 25.0% / 38.5%, deleaker 20.8% / 20.8%
    instruction = ["mitigation-major"] * 24 + ["degradation-major"] * 37 + ["no-change"] * 35
    deleaker = ["mitigation-major"] * 20 + ["degradation-major"] * 20 + ["no-change"] * 56
    scrambled = ["mitigation-major"] * 45 + ["degradation-major"] * 45 + ["no-change"] * 6
    rows = rank_rows(
        [_row("instruction", instruction), _row("deleaker", deleaker), _row("scrambled", scrambled)]
    )
    assert all(len(r.entry["verdicts"]) == n for r in rows)
    by_name = {r.entry["name"]: r for r in rows}
    assert by_name["deleaker"].net == 0.0
    assert by_name["instruction"].net == round((24 - 37) / 96, 6)
    # deleaker's interval lies wholly above instruction's? no: they overlap, so they tie
    assert by_name["deleaker"].rank == by_name["instruction"].rank == 1
    assert by_name["deleaker"].tie and by_name["instruction"].tie
    # order within a tie: net mitigation, best first; scrambling every image wins nothing
    assert [r.entry["name"] for r in rows][0] == "deleaker"
    assert by_name["scrambled"].net == 0.0 and by_name["scrambled"].net_interval[0] < -0.1


def test_an_interval_wholly_above_another_takes_the_better_rank():
    strong = ["mitigation-major"] * 60 + ["no-change"] * 36
    weak = ["degradation-major"] * 40 + ["no-change"] * 56
    middle = ["mitigation-major"] * 10 + ["no-change"] * 86
    rows = rank_rows([_row("weak", weak), _row("middle", middle), _row("strong", strong)])
    assert [(r.entry["name"], r.rank, r.tie) for r in rows] == [
        ("strong", 1, False),
        ("middle", 2, False),
        ("weak", 3, False),
    ]
    # the rank is 1 + the number of entries whose whole interval lies above this one's
    for row in rows:
        above = sum(1 for o in rows if o.net_interval[0] > row.net_interval[1])
        assert row.rank == 1 + above


def test_only_verified_entries_within_the_error_limit_are_ranked():
    labels = ["mitigation-major"] * 50 + ["no-change"] * 46
    rows = rank_rows(
        [
            _row("unverified", labels, status="unverified"),
            _row("rejected", labels, status="rejected"),
            _row("errors", labels, judge_errors=6),
            _row("ok", ["no-change"] * 96),
        ]
    )
    assert [(r.entry["name"], r.rank) for r in rows][0] == ("ok", 1)
    assert {r.entry["name"] for r in rows if r.rank is None} == {"unverified", "rejected", "errors"}


def test_an_entry_over_the_judge_error_limit_says_why(
    run_factory, tmp_path, maintainers, fake_slim
):
    folder = maintainers.install(tmp_path / "lb")
    (folder / "entries").mkdir()
    labels = ["mitigation-major"] * 9 + [None]
    run = run_factory("errors", labels=labels)
    path = folder / "entries" / "errors.json"
    path.write_text(
        json.dumps(build_entry(load_run(run), name="E", submitted="2026-11-28", submitter="tests"))
    )
    # a noisy judge (self-agreement 7 of 10) that labels the entry's judge error now
    now = {**{f"p{i:03d}": "mitigation-major" for i in range(9)}, "p009": "no-change"}
    noisy = {**now, "p000": "no-change", "p001": "no-change", "p002": "no-change"}
    record = sign_verification(
        path, run, maintainers, labels=now, seconds=(now, noisy), dataset=fake_slim
    )
    assert record["agreement"]["agreed"] == 9 and record["decision"]["verified"]
    (row,) = collect(folder, pinned=maintainers.pinned, dataset=fake_slim)
    assert row.report.status == "verified" and row.rank is None
    assert row.report.unranked == ["judge errors on 1 of 10 samples (10.0%) exceed the limit of 5%"]
    assert "verified; not ranked: judge errors on 1 of 10 samples" in markdown_table([row])


def test_invalid_entry_stops_the_render(board, tmp_path, maintainers, fake_slim):
    path = board / "entries" / "deleaker.json"
    entry = json.loads(path.read_text())
    entry["metrics"]["counts"]["mitigation-major"] = 9
    path.write_text(json.dumps(entry))
    with pytest.raises(ValidationError, match=r"deleaker.json: metrics.counts.mitigation-major"):
        _render(board, tmp_path, maintainers, fake_slim)
    assert not (tmp_path / "site").exists()


def test_readme_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- leaderboard:start -->\nold\n<!-- leaderboard:end -->\ntail\n")
    update_readme(readme, "| new |\n")
    assert readme.read_text() == (
        "intro\n<!-- leaderboard:start -->\n| new |\n<!-- leaderboard:end -->\ntail\n"
    )
    (tmp_path / "bare.md").write_text("no markers\n")
    with pytest.raises(ValidationError, match="markers"):
        update_readme(tmp_path / "bare.md", "x")


def test_render_cli(board, tmp_path, cli, maintainers, fake_slim):
    readme = tmp_path / "README.md"
    readme.write_text("<!-- leaderboard:start -->\n<!-- leaderboard:end -->\n")
    code, out, err = cli(
        "leaderboard",
        "render",
        str(board),
        "--out",
        str(tmp_path / "site"),
        "--readme",
        str(readme),
        "--pinned",
        str(board / "pinned.json"),
    )
    assert code == 0, err
    assert "rendered 2 entries (1 verified, 1 ranked)" in out
    assert "| 1 | DeLeaker (by tests) |" in readme.read_text()
    # a path that does not exist is a usage error (exit code 2), the folder or the pinned file
    code, _, err = cli("leaderboard", "render", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert code == 2 and "does not exist" in err
    missing = str(tmp_path / "no-pinned.json")
    code, _, err = cli(
        "leaderboard", "render", str(board), "--out", str(tmp_path), "--pinned", missing
    )
    assert code == 2 and "no-pinned.json" in err and "does not exist" in err


def test_the_repository_leaderboard_renders(tmp_path):
    """The committed entries validate against the shipped SLIM and the README table is current."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2] / "leaderboard"
    rows = render(repo, tmp_path / "site")
    table = markdown_table(rows)
    assert table in (repo / "README.md").read_text()


def test_the_shipped_toy_entries_are_verified_until_one_byte_changes(tmp_path):
    """Each shipped entry's record checks against the repository's key and pinned config."""
    import shutil
    from pathlib import Path

    board = tmp_path / "leaderboard"
    shutil.copytree(Path(__file__).resolve().parents[2] / "leaderboard", board)
    rows = render(board, tmp_path / "site")
    assert [r.report.status for r in rows] == ["verified"] * 4
    assert all(r.rank is not None for r in rows)
    path = board / "entries" / "toy-deleaker.json"
    path.write_bytes(path.read_bytes().replace(b"\n}", b"}", 1))  # one byte fewer
    status = {r.file: r.report.status for r in render(board, tmp_path / "site")}
    assert status.pop("toy-deleaker.json") == "unverified"
    assert set(status.values()) == {"verified"}


def test_recomputed_image_metrics_lose_the_self_reported_mark(
    board, tmp_path, maintainers, fake_slim
):
    from slim_leakage.leaderboard.verification import record_path

    entry_path = board / "entries" / "deleaker.json"
    record = json.loads(record_path(entry_path).read_text())["record"]
    record["image_metrics"] = {"lpips": {"entry": None, "recomputed": 0.25}, "notes": {}}
    record_path(entry_path).write_text(json.dumps(maintainers.sign(record)))
    weak_path = board / "entries" / "instruction.json"
    weak = json.loads(weak_path.read_text())
    weak["metrics"]["lpips"] = 0.01  # a self-reported figure stays marked
    weak_path.write_text(json.dumps(weak))
    md = markdown_table(collect(board, pinned=maintainers.pinned, dataset=fake_slim))
    good, other = md.splitlines()[4:6]
    assert "| 0.25 | 0.75 s (self-reported) |" in good
    assert "| 0.01 (self-reported) | 0.75 s (self-reported) |" in other


def test_page_sorts_and_draws_in_chromium(board, tmp_path, page, maintainers, fake_slim):
    _render(board, tmp_path, maintainers, fake_slim)
    page.goto((tmp_path / "site" / "index.html").as_uri())
    names = (
        "Array.from(document.querySelectorAll('#board tbody tr'))"
        ".map(r => r.cells[1].firstChild.textContent)"
    )
    assert page.eval(names) == ["DeLeaker", "Instruction | prompt"]
    assert page.eval("Array.from(document.querySelectorAll('.badge')).map(b => b.textContent)") == [
        "verified",
        "unverified",
    ]
    why = page.eval("document.querySelector('#board tbody tr:nth-child(2) .why').textContent")
    assert why.startswith("not ranked: no verification record")
    # the five segments of each bar fill it (all labelled samples), in label order
    widths = page.eval(
        "Array.from(document.querySelectorAll('.bar')).map(b => "
        "[b.clientWidth, Array.from(b.children).reduce((s, c) => s + c.getBoundingClientRect().width, 0)])"
    )
    for outer, inner in widths:
        assert inner == pytest.approx(outer, abs=1.0)
    seg = page.eval("document.querySelector('.seg[data-label=\"mitigation-major\"]').title")
    assert seg.startswith("mitigation-major: 60.0% (95% CI")
    # a real click on "Degradation" sorts descending, a second click ascending
    page.click("th[data-col='7']")
    page.wait_for(
        f"JSON.stringify({names}) === JSON.stringify(['Instruction | prompt', 'DeLeaker'])"
    )
    page.click("th[data-col='7']")
    page.wait_for(f"{names}[0] === 'DeLeaker'")
    # cost and package are marked self-reported, visibly
    first = "document.querySelector('#board tbody tr')"
    assert page.eval(f"{first}.cells[1].textContent") == "DeLeakerby tests"
    assert page.eval(f"{first}.cells[2].textContent") == "tiny-random"  # regenerated on it
    assert page.eval(f"{first}.cells[11].textContent") == (
        "0.75 s self-reported, peak 1 KiB self-reported"
    )
    assert page.eval(f"{first}.cells[12].textContent") == "n/a"  # no judge cost reported
    assert page.eval(f"{first}.cells[13].textContent") == "0.1.0 self-reported"
    marks = page.eval(
        f"Array.from({first}.querySelectorAll('.self-reported')).map(m => m.offsetWidth > 0)"
    )
    assert marks == [True, True, True]
    # the cost column sorts numerically
    page.click("th[data-col='11']")
    assert (
        page.eval("document.querySelector('th[data-col=\"11\"]').getAttribute('aria-sort')")
        == "descending"
    )
    assert page.console == []


def test_the_table_fits_1400_pixels_with_the_status_visible(
    board, tmp_path, page, maintainers, fake_slim
):
    # a long reason and a long name must wrap inside their cells, not widen the page
    path = board / "entries" / "instruction.json"
    entry = json.loads(path.read_text())
    entry["name"] = "Instruction prompt with a rather long display name for its method"
    entry["judge_errors_note"] = None
    del entry["judge_errors_note"]
    path.write_text(json.dumps(entry, indent=2))
    _render(board, tmp_path, maintainers, fake_slim)
    page.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": False},
    )
    page.goto((tmp_path / "site" / "index.html").as_uri())
    assert page.eval("window.innerWidth") == 1400
    assert page.eval("document.documentElement.scrollWidth") <= 1400
    rights = page.eval(
        "Array.from(document.querySelectorAll('table.board tr > :last-child'))"
        ".map(c => c.getBoundingClientRect().right)"
    )
    assert rights and max(rights) <= 1400
    badges = page.eval(
        "Array.from(document.querySelectorAll('.badge')).map(b => {"
        "const r = b.getBoundingClientRect(); return [r.left, r.right, r.width]; })"
    )
    assert all(left >= 0 and right <= 1400 and width > 0 for left, right, width in badges)


def test_a_verified_entry_edited_by_one_byte_renders_unverified(
    board, tmp_path, page, maintainers, fake_slim
):
    path = board / "entries" / "deleaker.json"
    original = path.read_bytes()
    badges = "Array.from(document.querySelectorAll('.badge')).map(b => b.textContent)"
    _render(board, tmp_path, maintainers, fake_slim)
    page.goto((tmp_path / "site" / "index.html").as_uri())
    assert page.eval(badges) == ["verified", "unverified"]
    # one byte: a space after the first brace (the JSON means the same; the bytes differ)
    path.write_bytes(original[:1] + b" " + original[2:])
    assert json.loads(path.read_bytes()) == json.loads(original)
    rows = _render(board, tmp_path, maintainers, fake_slim)
    assert [r.report.status for r in rows] == ["unverified", "unverified"]
    page.goto((tmp_path / "site" / "index.html").as_uri() + "?edited")
    assert page.eval(badges) == ["unverified", "unverified"]
    why = page.eval("document.querySelector('#board tbody tr .why').textContent")
    assert "the entry changed after it was verified" in why
    # restoring the bytes restores the badge
    path.write_bytes(copy.copy(original))
    assert _render(board, tmp_path, maintainers, fake_slim)[0].report.status == "verified"

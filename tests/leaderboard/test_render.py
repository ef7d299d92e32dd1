import json

import pytest

from slim_leakage.errors import ValidationError
from slim_leakage.leaderboard.build import build_entry
from slim_leakage.leaderboard.render import markdown_table, render, update_readme
from slim_leakage.rundir import load_run

GOOD = ["mitigation-major"] * 6 + ["mitigation-minor", "no-change", "no-change", None]
WEAK = ["mitigation-minor", "no-change", "degradation-major", "degradation-minor"] * 2 + [
    "no-change",
    "mitigation-major",
]
OTHER_JUDGE = {"backend": "openai", "model_id": "gpt-x", "prompt_versions": {"ranking": "v1"}}


@pytest.fixture
def board(run_factory, tmp_path):
    folder = tmp_path / "leaderboard"
    (folder / "entries").mkdir(parents=True)
    good = build_entry(load_run(run_factory("good", labels=GOOD)), name="DeLeaker")
    weak = build_entry(
        load_run(run_factory("weak", method="instruction-prompt", labels=WEAK, judge=OTHER_JUDGE)),
        name="Instruction | prompt",
    )
    (folder / "entries" / "deleaker.json").write_text(json.dumps(good))
    (folder / "entries" / "instruction.json").write_text(json.dumps(weak))
    return folder


def test_render_writes_page_and_table(board, tmp_path, fake_slim):
    rows = render(board, tmp_path / "site", dataset=fake_slim)
    assert [r.entry["name"] for r in rows] == ["DeLeaker", "Instruction | prompt"]
    assert [r.verified for r in rows] == [True, False]
    md = (tmp_path / "site" / "leaderboard.md").read_text()
    lines = md.splitlines()
    assert lines[0].startswith("| # | Method |") and len(lines) == 4
    # 7 of 9 labelled samples are mitigations; the judge error is not counted as a share
    assert (
        "| 1 | DeLeaker | tiny-random | pairs (10) | 77.8% | 22.2% | 0.0% | 1 | 0.75 s | verified |"
        in md
    )
    assert "Instruction \\| prompt" in md and "unverified" in lines[3]
    assert markdown_table([]) == "_No entries yet._\n"


def test_invalid_entry_stops_the_render(board, tmp_path, fake_slim):
    path = board / "entries" / "deleaker.json"
    entry = json.loads(path.read_text())
    entry["metrics"]["counts"]["mitigation-major"] = 9
    path.write_text(json.dumps(entry))
    with pytest.raises(ValidationError, match=r"deleaker.json: metrics.counts.mitigation-major"):
        render(board, tmp_path / "site", dataset=fake_slim)
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


def test_render_cli(board, tmp_path, cli, fake_slim):
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
    )
    assert code == 0, err
    assert "rendered 2 entries (1 verified)" in out
    assert "| 1 | DeLeaker |" in readme.read_text()
    code, _, err = cli("leaderboard", "render", str(tmp_path / "nope"), "--out", str(tmp_path))
    assert code == 1 and "does not exist" in err


def test_the_repository_leaderboard_renders(tmp_path):
    """The committed entries validate against the shipped SLIM and the README table is current."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2] / "leaderboard"
    rows = render(repo, tmp_path / "site")
    table = markdown_table(rows)
    assert table in (repo / "README.md").read_text()


def test_page_sorts_and_draws_in_chromium(board, tmp_path, page, fake_slim):
    render(board, tmp_path / "site", dataset=fake_slim)
    page.goto((tmp_path / "site" / "index.html").as_uri())
    names = (
        "Array.from(document.querySelectorAll('#board tbody tr')).map(r => r.cells[1].textContent)"
    )
    assert page.eval(names) == ["DeLeaker", "Instruction | prompt"]
    assert page.eval("Array.from(document.querySelectorAll('.badge')).map(b => b.textContent)") == [
        "verified",
        "unverified",
    ]
    # the five segments of each bar fill it (all labelled samples), in label order
    widths = page.eval(
        "Array.from(document.querySelectorAll('.bar')).map(b => "
        "[b.clientWidth, Array.from(b.children).reduce((s, c) => s + c.getBoundingClientRect().width, 0)])"
    )
    for outer, inner in widths:
        assert inner == pytest.approx(outer, abs=1.0)
    seg = page.eval("document.querySelector('.seg[data-label=\"mitigation-major\"]').title")
    assert seg.startswith("mitigation-major: 66.7% (95% CI")
    # a real click on "Degradation" sorts descending, a second click ascending
    page.click("th[data-col='6']")
    page.wait_for(
        f"JSON.stringify({names}) === JSON.stringify(['Instruction | prompt', 'DeLeaker'])"
    )
    page.click("th[data-col='6']")
    page.wait_for(f"{names}[0] === 'DeLeaker'")
    cost = "document.querySelector('#board tbody tr').cells[9].textContent"
    assert page.eval(cost) == "0.75 s, peak 1 KiB"
    # the cost column sorts numerically
    page.click("th[data-col='9']")
    assert (
        page.eval("document.querySelector('th[data-col=\"9\"]').getAttribute('aria-sort')")
        == "descending"
    )
    assert page.console == []

"""The models table: backbones ranked by their vanilla leakage rate, lower is better."""

from __future__ import annotations

import types

from slim_leakage.leaderboard.models_table import (
    LISTED,
    NOT_VERIFIED,
    REPRODUCED,
    model_rows,
    models_html,
    models_markdown,
)
from slim_leakage.leakage import rate_figure

from .test_render import board  # noqa: F401, F811  (the fixture: a small signed leaderboard)


def _row(
    file,
    preset,
    leaky,
    *,
    verified=True,
    digest="a",
    model_id=None,
    label=None,
    n=40,
    flags=True,
    reported=None,
):
    """An entry whose vanilla images: ``leaky`` of ``n`` leak (per-sample flags unless not)."""
    description = {"family": "flux", "model_id": model_id or preset}
    if label:
        description["label"] = label
    rate = reported if reported is not None else leaky / n
    verdicts = [{"vanilla_sha256": f"{digest}{i}"} for i in range(n)]
    if flags:
        for i, v in enumerate(verdicts):
            v["vanilla_leaks"] = i < leaky
    entry = {
        "backbone": {"preset": preset, "description": description},
        "dataset": {"config": "pairs"},
        "judge": {"backend": "gemini", "model_id": "g"},
        "metrics": {
            "leakage": {
                "vanilla": {
                    "images": {"rate": rate, "k": leaky, "n": n, "ci95": [rate, rate]},
                    "entities": {"rate": 0.5, "k": 1, "n": 2, "ci95": [0.0, 1.0]},
                },
                "method": None,
                "difference": None,
            }
        },
        "verdicts": verdicts,
    }
    return types.SimpleNamespace(file=file, entry=entry, verified=verified)


def test_rank_by_the_vanilla_rate_under_the_reproduction_rule():
    rows = [
        # reported 0%, but its per-sample checks say 24 of 40: the table shows what it recomputes
        _row("flux.json", "flux-dev", 24, reported=0.0),
        _row("sana.json", "sana", 4),
        _row("sana2.json", "sana", 6, model_id="other-sana"),
        _row("hosted.json", "images", 2, model_id="/x", label="api-model"),
        _row("mine.json", "diffusers", 12, verified=False, model_id="org/mine"),
        _row("noflags.json", "flux-schnell", 3, flags=False),
        # a second entry on flux-dev's same vanilla images: one row, not two
        _row("flux-b.json", "flux-dev", 24, verified=False),
        # no leakage figures: not in the models table
        types.SimpleNamespace(
            file="old.json",
            entry={**_row("x", "sana", 1).entry, "metrics": {}},
            verified=True,
        ),
    ]
    models = model_rows(rows)
    assert [(m.entry, m.rank, m.status) for m in models] == [
        ("sana.json", 1, REPRODUCED),
        ("sana2.json", 1, REPRODUCED),  # intervals overlap: a tie
        ("flux.json", 3, REPRODUCED),  # both sana intervals lie wholly below its own
        ("hosted.json", None, LISTED),  # a folder cannot be regenerated: listed, never ranked
        ("noflags.json", None, REPRODUCED),  # its rate cannot be recomputed: not ranked
        ("mine.json", None, NOT_VERIFIED),
    ]
    assert models[2].images["rate"] == 0.6 and models[2].images["k"] == 24
    assert models[2].images == rate_figure([True] * 24 + [False] * 16)
    assert models[0].tie and models[1].tie and not models[2].tie
    assert models[3].model == "images: api-model" and models[5].model == "diffusers: org/mine"
    md = models_markdown(models).splitlines()
    assert md[0].startswith("| Rank | Model |") and len(md) == 8
    lo, hi = (100 * x for x in models[0].images["ci95"])
    assert md[2] == (
        f"| 1= | sana | flux | pairs | gemini/g | 10.0% [{lo:.1f}, {hi:.1f}] | 50.0% [0.0, 100.0] "
        "| 40 | reproduced |"
    )
    assert "listed, not reproduced" in md[5] and "(self-reported)" in md[6]
    assert "<td>images: api-model</td>" in models_html(models)


def test_an_empty_table_says_so():
    assert "no entry reports a vanilla leakage rate yet" in models_markdown([])


def test_render_writes_the_models_table(board, tmp_path, maintainers, fake_slim):  # noqa: F811
    from slim_leakage.leaderboard.render import render

    render(board, tmp_path / "site", dataset=fake_slim, pinned=maintainers.pinned)
    assert (tmp_path / "site" / "models.md").read_text().startswith("| Rank | Model |")
    assert (tmp_path / "site" / "models.html").exists()

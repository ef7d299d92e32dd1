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

from .test_render import board  # noqa: F401, F811  (the fixture: a small signed leaderboard)


def _row(file, preset, rate, ci, *, verified=True, digest="a", model_id=None, label=None):
    description = {"family": "flux", "model_id": model_id or preset}
    if label:
        description["label"] = label
    entry = {
        "backbone": {"preset": preset, "description": description},
        "dataset": {"config": "pairs"},
        "judge": {"backend": "gemini", "model_id": "g"},
        "metrics": {
            "leakage": {
                "vanilla": {
                    "images": {"rate": rate, "k": int(rate * 100), "n": 100, "ci95": ci},
                    "entities": {"rate": rate / 2, "k": 1, "n": 2, "ci95": [0.0, 1.0]},
                },
                "method": None,
                "difference": None,
            }
        },
        "verdicts": [{"vanilla_sha256": digest}],
    }
    return types.SimpleNamespace(file=file, entry=entry, verified=verified)


def test_rank_by_the_vanilla_rate_under_the_reproduction_rule():
    rows = [
        _row("flux.json", "flux-dev", 0.6, [0.5, 0.7]),
        _row("sana.json", "sana", 0.2, [0.1, 0.3]),
        _row("sana2.json", "sana", 0.25, [0.15, 0.35], model_id="other-sana"),
        _row("hosted.json", "images", 0.05, [0.0, 0.1], model_id="/x", label="api-model"),
        _row("mine.json", "diffusers", 0.3, [0.2, 0.4], verified=False, model_id="org/mine"),
        # a second entry on flux-dev's same vanilla images: one row, not two
        _row("flux-b.json", "flux-dev", 0.6, [0.5, 0.7], verified=False),
        # no leakage figures: not in the models table
        types.SimpleNamespace(
            file="old.json",
            entry={**_row("x", "sana", 0.1, [0, 1]).entry, "metrics": {}},
            verified=True,
        ),
    ]
    models = model_rows(rows)
    assert [(m.entry, m.rank, m.status) for m in models] == [
        ("sana.json", 1, REPRODUCED),
        ("sana2.json", 1, REPRODUCED),  # intervals overlap: a tie
        ("flux.json", 3, REPRODUCED),  # both sana intervals lie wholly below its own
        ("hosted.json", None, LISTED),  # a folder cannot be regenerated: listed, never ranked
        ("mine.json", None, NOT_VERIFIED),
    ]
    assert models[0].tie and models[1].tie and not models[2].tie
    assert models[3].model == "images: api-model" and models[4].model == "diffusers: org/mine"
    md = models_markdown(models).splitlines()
    assert md[0].startswith("| Rank | Model |") and len(md) == 7
    assert md[2] == (
        "| 1= | sana | flux | pairs | gemini/g | 20.0% [10.0, 30.0] | 10.0% [0.0, 100.0] | 100 "
        "| reproduced |"
    )
    assert "listed, not reproduced" in md[5]
    assert "<td>images: api-model</td>" in models_html(models)


def test_an_empty_table_says_so():
    assert "no entry reports a vanilla leakage rate yet" in models_markdown([])


def test_render_writes_the_models_table(board, tmp_path, maintainers, fake_slim):  # noqa: F811
    from slim_leakage.leaderboard.render import render

    render(board, tmp_path / "site", dataset=fake_slim, pinned=maintainers.pinned)
    assert (tmp_path / "site" / "models.md").read_text().startswith("| Rank | Model |")
    assert (tmp_path / "site" / "models.html").exists()

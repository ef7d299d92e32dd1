"""The oracle judge backend, through the real judge protocol, on rendered toy images."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from slim_leakage.errors import JudgeError
from slim_leakage.judge import JUDGES, JudgeItem, get_judge
from slim_leakage.records import Sample
from slim_leakage.toy.oracle import NO_CHANGE, ranking_answer, rating
from slim_leakage.toy.world import place, render


def _png(path, array):
    Image.fromarray(array).save(path)
    return path


@pytest.fixture
def scenes(tmp_path):
    rng = np.random.default_rng(0)
    pl = place(("tiger", "leopard"), rng)
    clean = _png(tmp_path / "clean.png", render(pl).image)
    leaky = _png(tmp_path / "leaky.png", render(pl, patterns=["striped", "striped"]).image)
    refs = {
        n: _png(tmp_path / f"{n}.png", render(place((n,), rng)).image) for n in ("tiger", "leopard")
    }
    sample = Sample(id="s1", prompt="A tiger and a leopard", entities=("tiger", "leopard"), seed=1)
    return sample, clean, leaky, refs


def test_registered_and_light():
    assert "oracle" in JUDGES.names()
    assert JUDGES.get("oracle").default_model == "toy-oracle-v1"


@pytest.mark.parametrize(
    ("vanilla", "method", "label"),
    [
        ("leaky", "clean", "mitigation-major"),
        ("clean", "leaky", "degradation-major"),
        ("clean", "clean", "no-change"),
        ("leaky", "leaky", "no-change"),
    ],
)
def test_labels_through_the_protocol(scenes, tmp_path, vanilla, method, label):
    sample, clean, leaky, refs = scenes
    images = {"clean": clean, "leaky": leaky}
    judge = get_judge("oracle", cache_dir=str(tmp_path / "cache"))
    stages = []
    (verdict,) = judge.judge(
        [JudgeItem(sample, "m", images[vanilla], images[method], refs)],
        on_stage=stages.append,
        progress=False,
    )
    assert verdict.label == label and not verdict.order_flip and verdict.error is None
    assert verdict.judge == "oracle/toy-oracle-v1"
    typ = [s for s in stages if s.stage == "typicality"]
    assert typ and all(s.error is None for s in stages)
    judge.close()


def test_leakage_check_flags_only_the_leaky_image(scenes, tmp_path):
    sample, clean, leaky, refs = scenes
    judge = get_judge("oracle", cache_dir=str(tmp_path / "cache"))
    checks = judge.check_leakage([(sample, clean, refs), (sample, leaky, refs)])
    assert [c.leaky for c in checks] == [False, True]
    judge.close()


def test_non_toy_entities_are_a_clear_error(tmp_path):
    rng = np.random.default_rng(1)
    img = _png(tmp_path / "a.png", render(place(("tiger", "leopard"), rng)).image)
    sample = Sample(id="s2", prompt="A cat and a dog", entities=("cat", "dog"), seed=1)
    judge = get_judge("oracle", cache_dir=str(tmp_path / "cache"))
    (verdict,) = judge.judge([JudgeItem(sample, "m", img, img)], progress=False)
    assert verdict.label is None and "toy" in verdict.error
    judge.close()


def test_ranking_thresholds_and_rating_scale():
    def report(t):
        return {"entities": {"tiger": {"evidence": f"oracle: typicality {t:+.3f}"}}}

    assert ranking_answer(report(1.0), report(1.0 - NO_CHANGE / 2))["less_leaky"] == "neither"
    assert ranking_answer(report(1.0), report(0.7)) == {
        "less_leaky": "image1",
        "magnitude": "minor",
        "reason": "mean typicality +1.000 vs +0.700",
    }
    assert ranking_answer(report(-1.0), report(0.0))["magnitude"] == "major"
    with pytest.raises(JudgeError, match="not written by the oracle"):
        ranking_answer({"entities": {"tiger": {"evidence": "looks fine"}}}, report(0.0))
    assert [rating(t, True) for t in (1.0, 0.5, 0.0, -0.3, -1.0)] == [5, 4, 3, 2, 1]
    assert rating(1.0, False) == 1


def test_png_bytes_are_read(tmp_path):
    from slim_leakage.toy.oracle import typicality_answer

    rng = np.random.default_rng(2)
    buf = io.BytesIO()
    Image.fromarray(render(place(("zebra", "okapi"), rng)).image).save(buf, format="PNG")
    ans = typicality_answer(buf.getvalue(), ["zebra", "okapi"])
    assert [r["typicality"] for r in ans["entities"]] == [5, 5]
    with pytest.raises(JudgeError, match="decode"):
        typicality_answer(b"not a png", ["zebra", "okapi"])

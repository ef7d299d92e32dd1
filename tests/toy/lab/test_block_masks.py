"""Per-block mask localisation and the leakage of a finished run, on the shipped toy model."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def toy():
    from slim_leakage.backbones import load_backbone

    backbone = load_backbone("toy", device="cpu")
    backbone.pipe.set_progress_bar_config(disable=True)
    return backbone


def test_the_observer_sees_every_blocks_own_mask(toy):
    from slim_leakage.methods.deleaker import deleaker

    seen = {}
    options = {
        "image_text_suppression": False,
        "self_identity": False,
        "image_image_suppression": False,
        "use_history": False,
        "smoothing": False,
        "edit_start": (0.0, 0.0),
    }
    with deleaker(toy.pipe, ["tiger", "leopard"], **options) as run:
        run.observer = lambda b, e, step, offset, mask: seen.__setitem__((b, e, step, offset), mask)
        toy.pipe(
            "A tiger and a leopard",
            height=64,
            width=64,
            num_inference_steps=3,
            max_sequence_length=16,
            generator=torch.Generator().manual_seed(0),
        )
    assert sorted({k[3] for k in seen}) == [0, 1, 2, 3]  # 2 double + 2 single blocks
    assert len(seen) == 2 * 3 * 4
    for entity in ("tiger", "leopard"):
        # the step's recorded mask is the last block's own
        assert torch.equal(run.masks[entity][2], seen[(0, entity, 2, 3)].cpu())
        assert 0 < int(seen[(0, entity, 1, 0)].sum()) < 256


def test_block_localisation_reports_each_block_type_and_step(toy):
    from slim_leakage.toy.lab.measure import measure_block_masks

    out = measure_block_masks(toy.pipe, n_lookalike=2, n_mixed=2, steps=3, batch=4)
    assert out["blocks"] == {"double": 2, "single": 2}
    for kind in out["per_block"]:
        assert set(out["per_block"][kind]) <= {"double", "single"}
        for by_step in out["per_block"][kind].values():
            assert set(by_step) <= {"0", "1", "2"}
            for summary in by_step.values():
                assert summary["n"] > 0
                if summary["own"] is not None:
                    assert 0 <= summary["own"] + summary["other"] <= 1 + 1e-9
    assert set(out["history"]) == set(out["per_block"])


def test_run_leakage_reads_a_runs_images(toy, tmp_path, cli):
    from slim_leakage.run import RunConfig, evaluate
    from slim_leakage.toy.lab.measure import run_leakage
    from slim_leakage.toy.reading import read_image

    evaluate(
        RunConfig(
            method="vanilla",
            backbone="toy",
            device="cpu",
            judge="none",
            config="toy-pairs",
            limit=2,
            references=False,
            image_metrics=(),
            report=False,
            progress=False,
            out=str(tmp_path / "run"),
        )
    )
    out = run_leakage(tmp_path / "run", "vanilla")
    assert set(out) == {"pair"}
    from slim_leakage.rundir import load_run

    run = load_run(tmp_path / "run")
    found = []
    for s in run.samples:
        from PIL import Image

        found += [
            r.found for r in read_image(Image.open(run.image_path(s.id, "vanilla")), s.entities)
        ]
    assert out["pair"]["entities"] == 4 and out["pair"]["found"]["k"] == int(np.sum(found))
    code, out_text, _ = cli("toy", "leakage", str(tmp_path / "run"), "--role", "vanilla", "--json")
    assert code == 0 and "pair leak" in out_text
    import json

    assert json.loads(out_text.strip().splitlines()[-1]) == {str(tmp_path / "run"): out}

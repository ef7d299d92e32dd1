"""``slim-eval run --method deleaker`` end to end on the tiny Qwen-Image and Z-Image presets,
judged through the local protocol server (no network, no weights)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("openai")

from slim_leakage._io import iter_jsonl  # noqa: E402
from slim_leakage.judge.testing import ScriptedServer  # noqa: E402
from slim_leakage.records import Sample  # noqa: E402

SAMPLES = [
    Sample(id="a1", prompt="a cow and a horse in a field", entities=("cow", "horse"), seed=11),
    Sample(id="a2", prompt="a cat, a dog and a fox", entities=("cat", "dog", "fox"), seed=12),
]


@pytest.mark.parametrize("backbone", ["tiny-qwenimage", "tiny-zimage"])
def test_deleaker_runs_end_to_end(backbone, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(s.to_json() + "\n" for s in SAMPLES))
    with ScriptedServer() as server:
        code, out, err = cli(
            "run", "--method", "deleaker", "--method-arg", "smoothing=false",
            "--backbone", backbone, "--device", "cpu",
            "--backbone-arg", "num_inference_steps=2",
            "--judge", "openai-compatible", "--judge-arg", f"base_url={server.openai_base_url}",
            "--judge-arg", f"cache_dir={tmp_path / 'cache'}",
            "--config", str(samples), "--out", str(tmp_path / "run"), "--image-metrics", "none",
            "--no-progress", "--json",
        )  # fmt: skip
    assert code == 0, err
    assert out.splitlines()[0].startswith(f"slim-eval: method deleaker on backbone {backbone}")
    metrics = json.loads(out.strip().splitlines()[-1])
    assert metrics["n_samples"] == 2
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["backbone"]["name"] == backbone
    family = "qwenimage" if "qwen" in backbone else "zimage"
    assert manifest["backbone"]["family"] == family
    rows = [r for f in (tmp_path / "run").rglob("*.jsonl") for r in iter_jsonl(f)]
    tokens = [r["extra"]["entity_tokens"] for r in rows if "entity_tokens" in r.get("extra", {})]
    assert {frozenset(t) for t in tokens} == {
        frozenset({"cow", "horse"}),
        frozenset({"cat", "dog", "fox"}),
    }

"""`slim-eval estimate` and `slim-eval judge`."""

from __future__ import annotations

import json

import pytest

from slim_leakage._io import append_jsonl, atomic_write_json
from slim_leakage.judge.testing import ScriptedServer
from slim_leakage.records import Generation, Sample

from .conftest import build_items


@pytest.fixture
def samples_file(tmp_path):
    path = tmp_path / "samples.jsonl"
    for i in range(5):
        s = Sample(
            id=f"s{i}",
            prompt=f"a cow and a horse in a field {i}",
            entities=("cow", "horse"),
            seed=i,
        )
        append_jsonl(path, s.to_json())
    return path


def test_estimate_counts_calls_tokens_and_cost(cli, samples_file):
    code, out, err = cli(
        "estimate", "--judge", "gemini", "--config", str(samples_file), "--limit", "4", "--json"
    )
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["samples"] == 4 and result["calls_total"] == 24
    assert result["calls"] == {
        "extraction-text": 4,
        "extraction-images": 4,
        "typicality": 8,
        "ranking": 8,
    }
    # The default, gemini-3.6-flash: a flat 1,120 tokens per image (Gemini 3 default media
    # resolution), the low thinking level's tokens on every call, billed as output.
    assert result["model"] == "gemini-3.6-flash"
    assert result["image_tokens"] == 1120 * (4 * 2 + 8)
    assert result["thinking_tokens"] == {k: 400 * n for k, n in result["calls"].items()}
    billed_out = result["output_tokens_total"] + result["thinking_tokens_total"]
    expected = (result["input_tokens_total"] * 1.50 + billed_out * 7.50) / 1e6
    assert result["cost_usd"] == pytest.approx(expected, abs=1e-4)
    assert sum(result["cost_usd_by_stage"].values()) == pytest.approx(expected, abs=1e-3)
    assert result["priced"] is True
    # Batch mode's price beside it: half the list price (the Batch API guide), source named.
    batch_expected = (result["input_tokens_total"] * 0.75 + billed_out * 3.75) / 1e6
    assert result["cost_usd_batch"] == pytest.approx(batch_expected, abs=1e-4)
    assert result["price_per_mtok_batch"]["source"].startswith("https://ai.google.dev/")
    code, out, _ = cli(
        "estimate", "--judge", "gemini", "--config", str(samples_file), "--limit", "4"
    )
    assert f"in batch mode (--judge-arg batch=true): ${result['cost_usd_batch']:.2f}" in out
    # A Gemini 2.5 model: 258 tokens per small image, its whole thinking budget assumed.
    code, out, err = cli(
        "estimate",
        "--judge",
        "gemini",
        "--config",
        str(samples_file),
        "--limit",
        "4",
        "--judge-arg",
        "model=gemini-2.5-flash",
        "--json",
    )
    old = json.loads(out.strip().splitlines()[-1])
    assert old["image_tokens"] == 258 * (4 * 2 + 8) and old["thinking_tokens_total"] == 24 * 512


def test_estimate_shares_extraction_across_methods(cli, samples_file):
    code, out, _ = cli(
        "estimate",
        "--judge",
        "openai",
        "--config",
        str(samples_file),
        "--methods",
        "3",
        "--no-references",
        "--json",
    )
    result = json.loads(out.strip().splitlines()[-1])
    assert result["calls"] == {
        "extraction-text": 5,
        "extraction-images": 0,
        "typicality": 5 * 4,
        "ranking": 5 * 6,
    }


def test_estimate_table_and_unpriced_models(cli, samples_file):
    code, out, _ = cli(
        "estimate",
        "--judge",
        "openai",
        "--config",
        str(samples_file),
        "--judge-arg",
        "model=my-finetune",
    )
    assert code == 0
    assert "not in the pricing table" in out
    # a human summary by default: no JSON unless --json asks for it
    assert not any(line.lstrip().startswith("{") for line in out.splitlines())
    code, out, _ = cli(
        "estimate", "--judge", "openai", "--config", str(samples_file), "--judge-arg",
        "model=my-finetune", "--json",
    )  # fmt: skip
    assert json.loads(out) == json.loads(out.strip().splitlines()[-1])  # one JSON object only
    assert json.loads(out)["priced"] is False
    code, out, _ = cli(
        "estimate", "--judge", "openai-compatible", "--config", str(samples_file), "--json"
    )
    free = json.loads(out.strip().splitlines()[-1])
    assert free["cost_usd"] == 0.0 and free["cost_usd_batch"] is None  # no batch interface


def test_estimate_rejects_bad_input(cli, samples_file):
    code, _, err = cli("estimate", "--judge", "gemni", "--config", str(samples_file))
    assert code == 2 and "Did you mean 'gemini'" in err
    code, _, err = cli(
        "estimate", "--judge", "gemini", "--config", str(samples_file), "--judge-arg", "modle=x"
    )
    assert code == 2 and "Did you mean 'model'" in err


def make_run(root, n=3):
    items = build_items(root / "images", n, method="deleaker")
    append = lambda rec: append_jsonl(root / "generations.jsonl", rec.to_json())  # noqa: E731
    for item in items:
        append_jsonl(root / "samples.jsonl", item.sample.to_json())
        for role, path in (("vanilla", item.vanilla_image), ("method", item.method_image)):
            append(
                Generation(
                    item.sample.id,
                    role,
                    "vanilla" if role == "vanilla" else "deleaker",
                    str(path.relative_to(root)),
                    "0" * 64,
                    0,
                    16,
                    16,
                )
            )
    for entity, path in items[0].reference_images.items():
        append(
            Generation(
                f"entity:{entity}",
                "reference",
                "vanilla",
                str(path.relative_to(root)),
                "0" * 64,
                0,
                16,
                16,
                entity=entity,
            )
        )
    atomic_write_json(root / "manifest.json", {"method": {"name": "deleaker"}})
    return items


def test_judge_a_run_directory_and_resume(cli, tmp_path):
    run = tmp_path / "run"
    make_run(run)
    with ScriptedServer() as server:
        args = (
            "judge",
            str(run),
            "--judge",
            "openai-compatible",
            "--judge-arg",
            f"base_url={server.openai_base_url}",
            "--judge-arg",
            "model=qwen",
            "--json",
        )
        code, out, err = cli(*args)
        assert code == 0, err
        summary = json.loads(out.strip().splitlines()[-1])
        assert summary["n_samples"] == 3 and summary["judge_errors"] == 0
        assert sum(summary["counts"].values()) == 3
        assert server.count() == 18
        folder = run / "judged" / "openai-compatible-qwen"
        verdicts = [json.loads(x) for x in (folder / "verdicts.jsonl").read_text().splitlines()]
        # kept as each is judged, so in the order they finish
        assert sorted(v["sample_id"] for v in verdicts) == ["s0", "s1", "s2"]
        assert len((folder / "judgements.jsonl").read_text().splitlines()) == 15
        code, out, _ = cli(*args)
        assert code == 0 and server.count() == 18
        assert json.loads(out.strip().splitlines()[-1])["counts"] == summary["counts"]


def test_judge_errors_on_a_folder_that_is_not_a_run(cli, tmp_path):
    code, _, err = cli("judge", str(tmp_path), "--judge", "gemini")
    assert code == 2 and "not a finished run directory" in err
    run = tmp_path / "run"
    make_run(run)
    code, _, err = cli("judge", str(run), "--judge", "gemini", "--method", "nope")
    assert code == 2 and "no images of method 'nope'" in err

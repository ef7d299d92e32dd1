import json

import pytest

from slim_leakage._io import iter_jsonl
from slim_leakage.errors import ConfigError, DatasetError, JudgeError
from slim_leakage.reference_images import REFERENCE_SEED, reference_prompt
from slim_leakage.slim import hub_format, load_samples, load_slim
from slim_leakage.slim.verify import verify_samples

pytest.importorskip("diffusers")


@pytest.fixture(scope="module")
def tiny_backbone():
    """The tiny backbone with one step, on one thread (two threads thrash on a shared CPU)."""
    import torch

    from slim_leakage.backbones import load_backbone

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield load_backbone("tiny-random", device="cpu", dtype="float32", num_inference_steps=1)
    finally:
        torch.set_num_threads(threads)


class ScriptedJudge:
    """Says 'leaky' for the sample ids it is given; records what it was asked."""

    name = "scripted/v1"

    def __init__(self, leaky_ids, undecided_ids=()):
        self.leaky_ids = set(leaky_ids)
        self.undecided_ids = set(undecided_ids)
        self.asked = []

    def check_leakage(self, items):
        from slim_leakage.judge import LeakageCheck

        out = []
        for sample, image, refs in items:
            assert image.is_file() and set(refs) == set(sample.entities)
            assert all(p.is_file() for p in refs.values())
            self.asked.append(sample.id)
            if sample.id in self.undecided_ids:
                out.append(LeakageCheck(sample.id, None, error="answer did not parse"))
            else:
                leaky = sample.id in self.leaky_ids
                out.append(LeakageCheck(sample.id, leaky, scores={"borrowed": int(leaky)}))
        return out


class CountingBackbone:
    """The tiny backbone, counting the images it makes."""

    def __init__(self, backbone):
        self.inner = backbone
        self.name = backbone.name
        self.prompts = []
        self.seeds = []

    def describe(self):
        return self.inner.describe()

    def generate(self, prompts, seeds):
        self.prompts += list(prompts)
        self.seeds += list(seeds)
        return self.inner.generate(prompts, seeds)


@pytest.fixture
def samples():
    return load_samples("pairs", limit=4)


def test_verify_keeps_the_leaky_samples_with_image_and_verdict(tiny_backbone, samples, tmp_path):
    backbone = CountingBackbone(tiny_backbone)
    judge = ScriptedJudge([samples[0].id, samples[2].id], undecided_ids=[samples[3].id])
    report = verify_samples(
        samples, backbone, judge, tmp_path / "v", config="pairs-verified", batch_size=3
    )
    entities = {e for s in samples for e in s.entities}
    assert (report.checked, report.leaky, report.clean, report.errors, report.kept) == (
        4,
        2,
        1,
        1,
        2,
    )
    assert report.generated == 4 + len(entities) == len(backbone.prompts)
    # the references are drawn by the run's rule: "a/an <entity>" at the reference seed
    assert reference_prompt("eagle") == "an eagle" and reference_prompt("cow") == "a cow"
    assert backbone.prompts[4:] == [reference_prompt(e) for e in sorted(entities)]
    assert backbone.seeds[4:] == [REFERENCE_SEED] * len(entities)

    kept = load_samples("pairs-verified", root=tmp_path / "v" / "dataset")
    assert [s.id for s in kept] == [samples[0].id, samples[2].id]
    assert {s.source for s in kept} == {"verified:tiny-random:scripted/v1"}
    ds = load_slim("pairs-verified", root=tmp_path / "v" / "dataset")
    assert ds[0]["leakage"] is True and ds[0]["reference_image"].size == (32, 32)
    stored = (tmp_path / "v" / "images" / "vanilla" / f"{samples[0].id}.png").read_bytes()
    import pyarrow.parquet as pq

    column = pq.read_table(hub_format.data_path(tmp_path / "v" / "dataset", "pairs-verified"))
    assert column.column("reference_image")[0].as_py()["bytes"] == stored

    verdicts = {d["sample_id"]: d for d in iter_jsonl(tmp_path / "v" / "verdicts.jsonl")}
    assert verdicts[samples[3].id]["leaky"] is None
    assert verdicts[samples[3].id]["error"] == "answer did not parse"
    assert verdicts[samples[0].id]["scores"] == {"borrowed": 1}


def test_verify_resumes_without_redoing_work(tiny_backbone, samples, tmp_path):
    judge = ScriptedJudge([samples[1].id])
    verify_samples(samples[:2], tiny_backbone, judge, tmp_path / "v")
    backbone = CountingBackbone(tiny_backbone)
    judge2 = ScriptedJudge([samples[1].id])
    report = verify_samples(samples, backbone, judge2, tmp_path / "v", keep="all")
    # Only the two new samples (and their new entities) were generated and judged.
    new_entities = {e for s in samples[2:] for e in s.entities} - {
        e for s in samples[:2] for e in s.entities
    }
    assert len(backbone.prompts) == 2 + len(new_entities)
    assert judge2.asked == [s.id for s in samples[2:]]
    assert report.kept == 4  # keep="all" writes every decided sample
    rows = load_slim("verified", root=tmp_path / "v" / "dataset")
    assert rows["leakage"] == [False, True, False, False]


def test_resuming_with_another_judge_or_settings_is_refused(tiny_backbone, samples, tmp_path):
    from slim_leakage.errors import RunConfigMismatchError

    verify_samples(samples[:1], tiny_backbone, ScriptedJudge([]), tmp_path / "v")
    other = ScriptedJudge([])
    other.name = "scripted/v2"
    with pytest.raises(RunConfigMismatchError, match="another judge \\(judge='scripted/v1'\\)"):
        verify_samples(samples[:1], tiny_backbone, other, tmp_path / "v")
    assert other.asked == []
    recorded = json.loads((tmp_path / "v" / "verify.json").read_text())
    assert (
        recorded["backbone"] == "tiny-random" and recorded["settings"]["num_inference_steps"] == 1
    )
    recorded["settings"]["num_inference_steps"] = 20
    (tmp_path / "v" / "verify.json").write_text(json.dumps(recorded))
    with pytest.raises(RunConfigMismatchError, match="another settings"):
        verify_samples(samples[:1], tiny_backbone, ScriptedJudge([]), tmp_path / "v")


def test_verify_validates_before_generating(tiny_backbone, samples, tmp_path):
    backbone = CountingBackbone(tiny_backbone)
    judge = ScriptedJudge([])
    with pytest.raises(DatasetError, match="No samples"):
        verify_samples([], backbone, judge, tmp_path)
    with pytest.raises(ConfigError, match="no check_leakage"):
        verify_samples(samples, backbone, object(), tmp_path)
    with pytest.raises(ConfigError, match="keep='some'"):
        verify_samples(samples, backbone, judge, tmp_path, keep="some")
    with pytest.raises(ConfigError, match="not a lowercase file-safe name"):
        verify_samples(samples, backbone, judge, tmp_path, config="My Config")
    with pytest.raises(DatasetError, match="ids repeat"):
        verify_samples([samples[0], samples[0]], backbone, judge, tmp_path)
    assert backbone.prompts == []


def test_a_judge_answering_for_other_samples_is_an_error(tiny_backbone, samples, tmp_path):
    class Confused(ScriptedJudge):
        def check_leakage(self, items):
            from slim_leakage.judge import LeakageCheck

            return [LeakageCheck("someone-else", True) for _ in items]

    with pytest.raises(JudgeError, match="one LeakageCheck per item"):
        verify_samples(samples[:1], tiny_backbone, Confused([]), tmp_path)


def test_cli_verify_end_to_end(cli, samples, tiny_backbone, tmp_path, monkeypatch):
    import slim_leakage.backbones
    from slim_leakage.cli import dataset_cmd

    made = {}

    def reuse_backbone(name, **kwargs):  # the session's tiny backbone: no second build
        made["backbone"] = (name, kwargs)
        return tiny_backbone

    monkeypatch.setattr(slim_leakage.backbones, "load_backbone", reuse_backbone)

    def fake_make_judge(name, options):
        made["args"] = (name, options)
        return ScriptedJudge([samples[1].id])

    monkeypatch.setattr(dataset_cmd, "make_judge", fake_make_judge)
    ids = [s.id for s in samples[:2]]
    code, out, err = cli(
        "dataset", "verify", "--config", "pairs", "--ids", *ids, "--backbone", "tiny-random",
        "--device", "cpu", "--judge", "scripted", "--judge-arg", "model=x", "--out",
        str(tmp_path / "v"), "--json",
    )  # fmt: skip
    assert code == 0, err
    assert made["args"] == ("scripted", {"model": "x"})
    assert made["backbone"] == ("tiny-random", {"path": None, "device": "cpu", "dtype": None})
    data = json.loads(out.strip().splitlines()[-1])
    assert data["config"] == "pairs-verified" and data["kept"] == 1 and data["leaky"] == 1
    assert "judge: 2/2" in err
    assert [s.id for s in load_samples("pairs-verified", root=data["dataset_dir"])] == [ids[1]]


def test_cli_verify_rejects_bad_input_before_loading(cli, tmp_path, monkeypatch):
    from slim_leakage.cli import dataset_cmd

    def no_judge(name, options):
        raise AssertionError("the judge must not be built")

    monkeypatch.setattr(dataset_cmd, "make_judge", no_judge)
    args = [
        "dataset",
        "verify",
        "--backbone",
        "tiny-random",
        "--judge",
        "x",
        "--out",
        str(tmp_path),
    ]
    code, _, err = cli(*args, "--config", "pair")
    assert code == 2 and "Did you mean 'pairs'" in err
    code, _, err = cli(*args, "--name", "Bad Name")
    assert code == 2 and "not a lowercase file-safe name" in err


def test_cli_verify_with_the_real_judge_over_local_http(cli, tiny_backbone, tmp_path, monkeypatch):
    # The real Judge and OpenAI SDK against the local protocol server on 127.0.0.1.
    import slim_leakage.backbones
    from slim_leakage.judge.testing import ScriptedServer

    monkeypatch.setattr(slim_leakage.backbones, "load_backbone", lambda name, **kw: tiny_backbone)
    with ScriptedServer() as server:
        args = (
            "dataset", "verify", "--config", "pairs", "--limit", "3", "--backbone", "tiny-random",
            "--judge", "openai-compatible", "--judge-arg", f"base_url={server.openai_base_url}",
            "--judge-arg", "model=qwen", "--judge-arg", f"cache_dir={tmp_path / 'cache'}",
            "--out", str(tmp_path / "v"), "--keep", "all", "--json",
        )  # fmt: skip
        code, out, err = cli(*args)
        assert code == 0, err
        asked = server.count()
        assert asked > 0
        data = json.loads(out.strip().splitlines()[-1])
        assert data["checked"] == 3 and data["errors"] == 0
        assert data["leaky"] + data["clean"] == 3 == data["kept"]
        verdicts = list(iter_jsonl(tmp_path / "v" / "verdicts.jsonl"))
        assert sum(v["leaky"] for v in verdicts) == data["leaky"]
        code, out, _ = cli(*args)  # resumed: nothing is asked again
        assert code == 0 and server.count() == asked
    rows = load_slim("pairs-verified", root=tmp_path / "v" / "dataset")
    assert rows["leakage"] == [v["leaky"] for v in verdicts]
    assert set(rows["source"]) == {"verified:tiny-random:openai-compatible/qwen"}

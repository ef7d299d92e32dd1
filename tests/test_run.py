"""End-to-end runs on the tiny random backbone with a scripted judge: files, resume, kill -9."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("diffusers")

from slim_leakage._io import iter_jsonl, sha256_file  # noqa: E402
from slim_leakage.errors import ConfigError, RunConfigMismatchError  # noqa: E402
from slim_leakage.records import LABELS, Sample, Verdict  # noqa: E402
from slim_leakage.reference_images import REFERENCE_SEED, reference_prompt  # noqa: E402
from slim_leakage.run import RunConfig, evaluate  # noqa: E402
from slim_leakage.rundir import RunLock  # noqa: E402

SAMPLES = [
    Sample(
        id="s1",
        prompt="a cow and a horse in a field",
        entities=("cow", "horse"),
        seed=1,
        subset="simple",
        family="bovids",
    ),
    Sample(
        id="s2",
        prompt="a cat and a cheetah near a river",
        entities=("cat", "cheetah"),
        seed=2,
        subset="simple",
        family="big-cats",
    ),
    Sample(
        id="s3",
        prompt="an owl and an eagle on a branch",
        entities=("owl", "eagle"),
        seed=3,
        subset="interaction",
        family="raptors",
    ),
    Sample(
        id="s4",
        prompt="a dog and a fox in a forest",
        entities=("dog", "fox"),
        seed=4,
        subset="interaction",
        family="canids",
    ),
]


def write_samples(path: Path, samples=SAMPLES) -> Path:
    path.write_text("".join(s.to_json() + "\n" for s in samples))
    return path


class ScriptedJudge:
    """A judge whose label is a pure function of the two image hashes (so reruns agree)."""

    def __init__(self, die_after: int | None = None):
        self.calls = 0
        self.die_after = die_after

    name = "scripted/v1"

    def check(self):
        pass

    def describe(self):
        return {"backend": "scripted", "model_id": "scripted-v1", "prompt_versions": {}}

    def check_leakage(self, items, progress=False):
        from slim_leakage.judge import LeakageCheck

        # the run's leakage stage: whether an image leaks is a pure function of its hash
        self.leakage_checks = getattr(self, "leakage_checks", 0) + len(items)
        out = []
        for sample, image, _ in items:
            digest = sha256_file(image)
            leaks = {e: int(digest[i], 16) % 2 == 1 for i, e in enumerate(sample.entities)}
            out.append(
                LeakageCheck(
                    sample.id,
                    any(leaks.values()),
                    None,
                    {"borrowed_features": {e: ["x"] if v else [] for e, v in leaks.items()}},
                )
            )
        return out

    def judge(self, items, on_stage=None, progress=True, on_verdict=None):
        from slim_leakage.records import StageResult

        out = []
        for item in items:
            self.calls += 1
            a, b = sha256_file(item.vanilla_image), sha256_file(item.method_image)
            label = "no-change" if a == b else LABELS[int(b[:8], 16) % 5]
            if on_stage:
                on_stage(
                    StageResult(
                        sample_id=item.sample.id,
                        stage="ranking",
                        version="v1",
                        key=b[:16],
                        output={"label": label},
                        order="ab",
                        calls=1,
                    )
                )
            if self.die_after is not None and self.calls > self.die_after:
                # killed between a stage record and its verdict: the worst moment
                os.kill(os.getpid(), signal.SIGKILL)
            verdict = Verdict(
                sample_id=item.sample.id,
                method=item.method,
                label=label,
                judge="scripted/v1",
                rationale="scripted",
            )
            if on_verdict is not None:
                on_verdict(verdict)
            out.append(verdict)
        return out


def config(tmp_path, **kw) -> RunConfig:
    base = dict(
        out=str(tmp_path / "run"),
        method="vanilla",
        backbone="tiny-random",
        backbone_args={"num_inference_steps": 2, "max_sequence_length": 64},
        device="cpu",
        judge="none",
        config=str(write_samples(tmp_path / "samples.jsonl")),
        batch_size=3,
        image_metrics=(),
        progress=False,
    )
    base.update(kw)
    return RunConfig(**base)


def test_end_to_end_writes_every_file(tmp_path):
    judge = ScriptedJudge()
    metrics = evaluate(config(tmp_path), judge=judge)
    root = tmp_path / "run"
    for name in (
        "manifest.json",
        "samples.jsonl",
        "generations.jsonl",
        "judgements.jsonl",
        "verdicts.jsonl",
        "metrics.json",
        "report.html",
    ):
        assert (root / name).is_file(), name
    gens = list(iter_jsonl(root / "generations.jsonl"))
    roles = sorted({g["role"] for g in gens})
    assert roles == ["method", "reference", "vanilla"]
    for g in gens:
        assert sha256_file(root / g["path"]) == g["sha256"]
    # vanilla as the method reproduces the vanilla pixels exactly (same seeds, same settings)
    van = {g["sample_id"]: g["sha256"] for g in gens if g["role"] == "vanilla"}
    met = {g["sample_id"]: g["sha256"] for g in gens if g["role"] == "method"}
    assert van == met
    verdicts = list(iter_jsonl(root / "verdicts.jsonl"))
    assert [v["sample_id"] for v in verdicts] == ["s1", "s2", "s3", "s4"]
    assert metrics["counts"]["no-change"] == 4
    assert metrics["distribution"]["no-change"] == 1.0
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["backbone"]["name"] == "tiny-random"
    assert manifest["judge"]["model_id"] == "scripted-v1"
    assert manifest["cost"]["method"]["seconds_per_image"] > 0
    # the judge's calls are the stage records' calls, summed (the scripted judge has no tokens)
    stages = list(iter_jsonl(root / "judgements.jsonl"))
    assert manifest["cost"]["judge"]["calls"] == sum(r["calls"] for r in stages)
    assert set(manifest["cost"]["judge"]["by_stage"]) == {r["stage"] for r in stages}
    assert metrics["extra"]["cost"]["judge"] == manifest["cost"]["judge"]
    assert manifest["versions"]["torch"]
    # one reference image per entity
    refs = [g for g in gens if g["role"] == "reference"]
    assert sorted(g["entity"] for g in refs) == sorted(e for s in SAMPLES for e in s.entities)
    # drawn by the one reference rule the SLIM verifier uses too
    assert {(g["extra"]["prompt"], g["seed"]) for g in refs if g["entity"] == "owl"} == {
        (reference_prompt("owl"), REFERENCE_SEED)
    }
    assert reference_prompt("owl") == "an owl"


def test_rerun_does_no_work(tmp_path, monkeypatch):
    judge = ScriptedJudge()
    first = evaluate(config(tmp_path), judge=judge)
    calls = judge.calls

    from slim_leakage.backbones import base

    def boom(*a, **k):
        raise AssertionError("a finished run generated again")

    monkeypatch.setattr(base.Backbone, "generate", boom)
    monkeypatch.setattr("slim_leakage.backbones.load_backbone", boom)
    second = evaluate(config(tmp_path), judge=judge)
    assert judge.calls == calls
    assert second["counts"] == first["counts"]
    assert len(list(iter_jsonl(tmp_path / "run" / "verdicts.jsonl"))) == len(SAMPLES)


def test_generate_only_then_judge_later(tmp_path):
    metrics = evaluate(config(tmp_path, judge="none"))
    assert metrics["n_labelled"] == 0 and not (tmp_path / "run" / "verdicts.jsonl").exists()


def test_changed_config_is_refused_with_the_difference(tmp_path):
    evaluate(config(tmp_path), judge=ScriptedJudge())
    with pytest.raises(RunConfigMismatchError) as info:
        evaluate(config(tmp_path, backbone_args={"num_inference_steps": 1}), judge=ScriptedJudge())
    assert "num_inference_steps" in str(info.value)
    assert info.value.exit_code == 2


def test_lock_refuses_a_second_process(tmp_path):
    lock = tmp_path / "run" / ".lock"
    with RunLock(lock):
        code = (
            "from slim_leakage.rundir import RunLock\n"
            "from pathlib import Path\n"
            f"RunLock(Path({str(lock)!r})).__enter__()\n"
        )
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert out.returncode != 0
        assert "is in use by pid" in out.stderr
    with RunLock(lock):  # released on exit
        pass


def test_bad_options_fail_before_loading_weights(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("weights loaded before validation")

    monkeypatch.setattr("slim_leakage.backbones.load_backbone", boom)
    with pytest.raises(ConfigError, match="no option 'alpah'"):
        evaluate(config(tmp_path, method="vanilla", method_args={"alpah": "1"}))
    with pytest.raises(ConfigError, match="'nope'"):
        evaluate(config(tmp_path, ids=("nope",)))
    with pytest.raises(ConfigError, match="batch_size"):
        config(tmp_path, batch_size=0)


_KILL_SCRIPT = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, {tests!r})
    from test_run import ScriptedJudge, config
    from slim_leakage.run import evaluate
    from pathlib import Path
    evaluate(config(Path({tmp!r})), judge=ScriptedJudge(die_after={n}))
    """
)


@pytest.mark.parametrize("die_after", [1, 3])
def test_kill_9_mid_judging_then_resume_matches_uninterrupted(tmp_path, die_after):
    killed = tmp_path / "killed"
    killed.mkdir()
    script = _KILL_SCRIPT.format(tests=str(Path(__file__).parent), tmp=str(killed), n=die_after)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert out.returncode == -signal.SIGKILL, out.stderr[-2000:]
    done_before = list(iter_jsonl(killed / "run" / "verdicts.jsonl"))
    assert len(done_before) == die_after  # each verdict was persisted the moment it existed
    resumed = evaluate(config(killed), judge=ScriptedJudge())
    verdicts = [v["sample_id"] for v in iter_jsonl(killed / "run" / "verdicts.jsonl")]
    assert sorted(verdicts) == sorted(s.id for s in SAMPLES)  # each exactly once
    stages = [
        (r["sample_id"], r["stage"], r["key"], r["order"])
        for r in iter_jsonl(killed / "run" / "judgements.jsonl")
    ]
    assert len(stages) == len(set(stages)) == len(SAMPLES)  # no stage record written twice
    clean = tmp_path / "clean"
    clean.mkdir()
    reference = evaluate(config(clean), judge=ScriptedJudge())
    for key in ("counts", "distribution", "intervals", "n_labelled", "judge_errors"):
        assert resumed[key] == reference[key]


def test_torn_line_from_a_crash_is_repaired(tmp_path):
    evaluate(config(tmp_path, judge="none"))
    gens = tmp_path / "run" / "generations.jsonl"
    with open(gens, "ab") as fh:
        fh.write(b'{"sample_id": "s9", "role": "van')
    metrics = evaluate(config(tmp_path, judge="none"))
    assert gens.read_bytes().endswith(b"\n")
    assert metrics["n_samples"] == len(SAMPLES)


def test_unsupported_backbone_fails_before_weights_load(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise AssertionError("weights loaded before the method/backbone check")

    from slim_leakage.methods import METHODS
    from slim_leakage.methods.vanilla import Vanilla

    class FluxOnly(Vanilla):
        name = "flux-only"
        families = ("flux",)

    monkeypatch.setattr("slim_leakage.backbones.load_backbone", boom)
    METHODS.register("flux-only", FluxOnly)
    try:
        with pytest.raises(ConfigError, match="does not support the 'sana' backbone") as info:
            evaluate(config(tmp_path, method="flux-only", backbone="sana"))
    finally:
        METHODS.unregister("flux-only")
    assert "flux" in info.value.hint
    assert not (tmp_path / "run").exists()


def test_a_judge_object_without_the_contract_is_refused_before_any_work(tmp_path):
    class Partial:
        def judge(self, items, on_stage=None, progress=True, on_verdict=None):
            return []

    with pytest.raises(ConfigError, match="missing: name, check, describe, check_leakage"):
        evaluate(config(tmp_path), judge=Partial())
    assert not (tmp_path / "run").exists()


def _without(data: dict, paths: list[tuple[str, ...]]) -> dict:
    data = json.loads(json.dumps(data))
    for path in paths:
        where = data
        for key in path[:-1]:
            where = where[key]
        where.pop(path[-1])
    return data


#: Two samples, one step, no reference images: a run in a few seconds.
FAST = {
    "references": False,
    "ids": ("s1", "s2"),
    "batch_size": 1,
    "backbone_args": {"num_inference_steps": 1},
}


def test_cost_survives_an_interrupted_generation(tmp_path, monkeypatch):
    from slim_leakage.rundir import RunDir

    save, saved = RunDir.save_generation, []

    def save_then_stop(self, *args, **kwargs):
        saved.append(save(self, *args, **kwargs))
        if len(saved) == 3:  # after the vanilla images and the first method image
            raise KeyboardInterrupt  # what Ctrl-C raises; kill -9 leaves the same files
        return saved[-1]

    monkeypatch.setattr(RunDir, "save_generation", save_then_stop)
    stopped, clean = tmp_path / "stopped", tmp_path / "clean"
    stopped.mkdir()
    clean.mkdir()
    with pytest.raises(KeyboardInterrupt):
        evaluate(config(stopped, **FAST), judge=ScriptedJudge())
    monkeypatch.setattr(RunDir, "save_generation", save)
    resumed = evaluate(config(stopped, **FAST), judge=ScriptedJudge())
    reference = evaluate(config(clean, **FAST), judge=ScriptedJudge())
    # every image's timing is in its record: the resumed cost covers all of them
    for role in ("vanilla", "method"):
        assert resumed["extra"]["cost"][role]["images_timed"] == 2
        assert resumed["extra"]["cost"][role]["seconds_per_image"] > 0
    # equal but for what is measured per image: its seconds (and its peak memory on a GPU)
    measured = [
        ("extra", "cost", role, key)
        for role in ("vanilla", "method")
        for key in ("seconds_per_image", "peak_memory_bytes")
    ]
    assert _without(resumed, measured) == _without(reference, measured)
    manifest = json.loads((stopped / "run" / "manifest.json").read_text())
    assert manifest["cost"] == resumed["extra"]["cost"]


class FailingJudge(ScriptedJudge):
    """A judge whose every answer failed (its server returned errors)."""

    def judge(self, items, on_stage=None, progress=True, on_verdict=None):
        out = []
        for item in items:
            verdict = Verdict(
                sample_id=item.sample.id,
                method=item.method,
                label=None,
                error="ranking: JudgeError: HTTP 500: the server is down",
                judge="scripted/v1",
            )
            if on_verdict is not None:
                on_verdict(verdict)
            out.append(verdict)
        return out


def test_a_run_whose_every_judgement_failed_ends_in_an_error_and_resumes(tmp_path):
    from slim_leakage.errors import RunError

    with pytest.raises(RunError) as info:
        evaluate(config(tmp_path, **FAST), judge=FailingJudge())
    assert info.value.exit_code == 1
    assert "Every judgement of this run failed (2 sample(s), none labelled)" in info.value.message
    assert "sample 's1': ranking: JudgeError: HTTP 500: the server is down" in info.value.message
    root = tmp_path / "run"
    assert json.loads((root / "metrics.json").read_text())["judge_errors"] == 2  # kept
    assert (root / "report.html").is_file()
    # once the judge answers, the same command judges the failed samples again
    judge = ScriptedJudge()
    metrics = evaluate(config(tmp_path, **FAST), judge=judge)
    assert judge.calls == 2
    assert metrics["judge_errors"] == 0 and metrics["n_labelled"] == 2
    assert len(list(iter_jsonl(root / "verdicts.jsonl"))) == 4  # the errors are kept


def test_some_failed_judgements_are_counted_not_fatal(tmp_path):
    class HalfFailing(ScriptedJudge):
        def judge(self, items, on_stage=None, progress=True, on_verdict=None):
            items = list(items)
            ok = super().judge(items[::2], on_stage, progress, on_verdict)
            bad = FailingJudge().judge(items[1::2], on_stage, progress, on_verdict)
            return ok + bad

    metrics = evaluate(config(tmp_path, **FAST), judge=HalfFailing())
    assert metrics["judge_errors"] == 1 and metrics["n_labelled"] == 1


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"limit": True}, "limit=True is a boolean"),
        ({"batch_size": 2.5}, "batch_size=2.5 is a number with a fraction"),
        ({"method_args": "alpha=1"}, "method_args='alpha=1' is a text"),
        ({"references": 0}, "references=0 is an integer"),
        ({"ids": ()}, "The selection of sample ids is empty"),
        ({"dtype": "float64"}, "dtype='float64' is not one of float32, float16, bfloat16"),
        ({"judge": "none", "judge_args": {"model": "x"}}, "the judge is 'none'"),
    ],
)
def test_run_config_values_of_the_wrong_type_are_refused(tmp_path, change, named):
    with pytest.raises(ConfigError, match=re.escape(named)):
        config(tmp_path, **change)


def test_paths_and_lists_are_taken_in_their_usual_forms(tmp_path):
    cfg = config(tmp_path, out=tmp_path / "run", ids=["s1"], image_metrics=["lpips"])
    assert cfg.out == str(tmp_path / "run") and cfg.ids == ("s1",)
    assert cfg.image_metrics == ("lpips",)
    assert RunConfig().ids is None  # every sample

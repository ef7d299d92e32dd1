"""The run directory: names, record files, the manifest check, shards and the reader."""

from __future__ import annotations

import dataclasses
import json

import pytest
from PIL import Image

from slim_leakage.errors import DatasetError, RunConfigMismatchError, RunError
from slim_leakage.records import Generation, Sample, StageResult, Verdict
from slim_leakage.reference_images import ReferenceImage
from slim_leakage.rundir import (
    Records,
    RunDir,
    Shard,
    differences,
    image_file,
    load_run,
    mask_file,
    reference_file,
    reference_id,
    sample_problems,
    slug,
)

SAMPLES = (
    Sample(id="s1", prompt="a cow and a blue jay", entities=("cow", "blue jay"), seed=1),
    Sample(id="S 2", prompt="a cat and a dog", entities=("cat", "dog"), seed=2),
)


@dataclasses.dataclass
class Output:
    """A method output as the run hands it to the directory."""

    image: Image.Image
    extra: dict = dataclasses.field(default_factory=dict)
    overlays: dict = dataclasses.field(default_factory=dict)


def _image(shade: int) -> Image.Image:
    return Image.new("RGB", (8, 8), (shade, 0, 0))


def test_file_names_are_slugs_of_ids_methods_and_entities():
    assert slug("Blue Jay!") == "blue-jay" and slug("???") == "x"
    assert image_file("vanilla", "S 2") == "images/vanilla/s-2.png"
    assert image_file("method", "S 2", "Instruction Prompt") == "images/instruction-prompt/s-2.png"
    assert reference_file("blue jay") == "images/reference/blue-jay.png"
    assert mask_file("s1", "blue jay") == "images/masks/s1/blue-jay.png"
    assert reference_id("blue jay") == "entity:blue jay"
    run = RunDir("r")
    assert run.judged_dir("openai-compatible", "Qwen2.5 VL").as_posix() == (
        "r/judged/openai-compatible-Qwen2.5-VL"
    )


def test_records_go_to_the_file_of_their_type_and_read_back_typed(tmp_path):
    records = Records(tmp_path)
    gen = Generation("s1", "vanilla", "vanilla", "images/vanilla/s1.png", "0" * 64, 1, 8, 8)
    stage = StageResult("s1", "ranking", "v1", "k", {"label": "no-change"}, order="ab")
    first = Verdict("s1", "m", None, error="HTTP 500")
    other = Verdict("s2", "m", "no-change")
    second = Verdict("s1", "m", "mitigation-major")
    for record in (gen, stage, first, other, second):
        records.append(record)
    assert records.generations() == (gen,)
    assert records.judgements() == (stage,)
    assert records.verdicts() == (first, other, second)
    # a resume judges a sample again after a judge error: its latest verdict counts, in the
    # order samples first appear
    assert records.unique_verdicts() == [second, other]
    assert json.loads(records.verdicts_path.read_text().splitlines()[0]) == first.to_dict()


def test_a_torn_last_line_is_cut_off_before_the_next_append(tmp_path):
    records = Records(tmp_path)
    records.append(Verdict("s1", "m", "no-change"))
    with open(records.verdicts_path, "ab") as fh:
        fh.write(b'{"sample_id": "s2", "met')
    assert [v.sample_id for v in records.verdicts()] == ["s1"]  # readers skip it
    records.repair()
    records.append(Verdict("s2", "m", "no-change"))
    assert [v.sample_id for v in records.verdicts()] == ["s1", "s2"]


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ('{"sample_id": "s2", "method": "m", "label": "better"}', "Unknown label 'better'"),
        ("{}", "misses the field(s) 'sample_id', 'method', 'label'"),
        ('["s2", "m"]', "must be a JSON object"),
        ('{"sample_id": 2, "method": "m", "label": null, "error": "x"}', "'sample_id' is an int"),
    ],
)
def test_a_malformed_record_names_its_file_and_line(tmp_path, line, named):
    records = Records(tmp_path)
    records.append(Verdict("s1", "m", "no-change"))
    with open(records.verdicts_path, "a") as fh:
        # a blank line first: the message counts lines of the file, not records
        fh.write("\n" + line + "\n")
    records.append(Verdict("s3", "m", "no-change"))
    with pytest.raises(DatasetError) as info:
        records.verdicts()
    assert f"{records.verdicts_path}:3 is not a valid Verdict" in info.value.message
    assert named in info.value.message


def test_the_manifest_is_written_once_and_checked_on_resume(tmp_path):
    run = RunDir(tmp_path / "run")
    calls = []

    def describe():
        calls.append(1)
        return {"method": {"name": "m"}, "cost": {}}

    identity = {"method": {"name": "m", "config": {"alpha": 1.0}}}
    manifest = run.open_manifest(identity, samples=SAMPLES, describe=describe)
    assert list(manifest)[:6] == [
        "schema",
        "package_version",
        "git_commit",
        "versions",
        "identity",
        "config_hash",
    ]
    assert manifest["method"] == {"name": "m"} and list(manifest)[-1] == "created"
    assert run.samples() == SAMPLES
    assert run.open_manifest(identity, samples=SAMPLES, describe=describe) == manifest
    assert len(calls) == 1  # described when written, not on resume
    other = {"method": {"name": "m", "config": {"alpha": 2.0}}}
    run.save_generation(
        SAMPLES[0], "vanilla", "M", Output(_image(10)), seconds=0.1, peak_memory_bytes=None
    )
    with pytest.raises(RunConfigMismatchError, match="method.config.alpha was 1.0, now 2.0"):
        run.open_manifest(other, samples=SAMPLES, describe=describe)


def test_a_run_with_no_finished_work_starts_afresh_under_another_configuration(tmp_path):
    run = RunDir(tmp_path / "run")
    run.open_manifest({"method": {"name": "a"}}, samples=SAMPLES, describe=dict)
    manifest = run.open_manifest({"method": {"name": "b"}}, samples=SAMPLES[:1], describe=dict)
    assert manifest["identity"] == {"method": {"name": "b"}}
    assert run.samples() == SAMPLES[:1]


def test_saved_images_are_finished_until_their_file_changes(tmp_path):
    run = RunDir(tmp_path)
    output = Output(_image(10), extra={"k": 1}, overlays={"blue jay": _image(20)})
    gen = run.save_generation(
        SAMPLES[0], "method", "M", output, seconds=0.1234567, peak_memory_bytes=None
    )
    assert gen.path == "images/m/s1.png" and gen.seconds == 0.123457 and gen.seed == 1
    assert gen.extra == {"k": 1, "overlays": {"blue jay": "images/masks/s1/blue-jay.png"}}
    assert (tmp_path / "images/masks/s1/blue-jay.png").is_file()
    ref = run.save_reference(ReferenceImage("blue jay", "a blue jay", 0, _image(30)))
    assert (ref.sample_id, ref.role, ref.path) == (
        "entity:blue jay",
        "reference",
        "images/reference/blue-jay.png",
    )
    assert run.records.generations() == (gen, ref)
    done = run.finished_generations()
    assert set(done) == {("method", "s1", None), ("reference", "entity:blue jay", "blue jay")}
    _image(99).save(tmp_path / gen.path)  # other pixels than recorded
    assert set(run.finished_generations()) == {("reference", "entity:blue jay", "blue jay")}


def test_each_rank_writes_its_shard_and_the_merge_keeps_sample_order(tmp_path):
    ids = ["a", "b", "c", "d"]
    for rank in (0, 1):
        run = RunDir(tmp_path, Shard(rank=rank, world=2))
        assert run.records.folder == tmp_path / "shards" / f"rank-{rank}"
        for sample_id in reversed(ids[rank::2]):
            run.records.append(Verdict(sample_id, "m", "no-change"))
    RunDir(tmp_path, Shard(rank=0, world=2)).merge_shards(ids)
    assert [v.sample_id for v in Records(tmp_path).verdicts()] == ids
    assert Shard(rank=1, world=2).take(ids) == ["b", "d"]


def _finished(tmp_path):
    run = RunDir(tmp_path / "run")
    run.write_manifest({"method": {"name": "M", "config": {}}})
    run.write_samples(SAMPLES)
    return run


def test_load_run_reads_the_records_and_finds_images_by_record_or_name(tmp_path):
    run = _finished(tmp_path)
    run.save_generation(
        SAMPLES[0], "method", "M", Output(_image(1)), seconds=0, peak_memory_bytes=None
    )
    run.save_reference(ReferenceImage("cow", "a cow", 0, _image(2)))
    run.records.append(Verdict("s1", "M", "no-change"))
    data = load_run(run.root)
    assert data.samples == SAMPLES and data.method == "M" and data.metrics is None
    assert [v.sample_id for v in data.verdicts] == ["s1"]
    assert data.image_path("s1", "method") == run.root / "images/m/s1.png"
    # without a record: where the run puts it
    assert data.image_path("S 2", "vanilla") == run.root / "images/vanilla/s-2.png"
    assert data.image_path("S 2", "method") == run.root / "images/m/s-2.png"
    assert data.reference_path("cow") == run.root / "images/reference/cow.png"
    assert data.reference_path("blue jay") == run.root / "images/reference/blue-jay.png"


def test_load_run_refuses_what_is_not_a_run(tmp_path):
    with pytest.raises(RunError, match="does not exist"):
        load_run(tmp_path / "nothing")
    with pytest.raises(RunError, match="has no manifest.json"):
        load_run(tmp_path)
    run = _finished(tmp_path)
    run.samples_path.write_text("")
    with pytest.raises(RunError, match="samples.jsonl is missing or empty"):
        load_run(run.root)


# -- sample ids and the files they name ----------------------------------------------------------
def _sample(sample_id, entities=("cow", "horse")):
    return Sample(id=sample_id, prompt="a cow and a horse and a Cow", entities=entities, seed=1)


@pytest.mark.parametrize(
    ("sample_id", "why"),
    [
        ("a/b", "has the character(s) '/'"),
        ("a b\n", "has the character(s) '\\n' ' '"),
        (".hidden", "starts with '.'"),
        ("x" * 129, "is 129 characters long (at most 128)"),
    ],
)
def test_ids_that_break_the_rule_are_named_with_a_fix(sample_id, why):
    (problem,) = sample_problems([_sample(sample_id)], where=lambda i: ["mine.jsonl:4"])
    assert problem.message.startswith("mine.jsonl:4: the sample id ")
    assert problem.message.endswith(f" {why}.")
    assert "letters, digits, '.', '_' and '-'" in problem.hint and "rename it, e.g." in problem.hint


def test_duplicate_and_colliding_ids_are_refused():
    samples = [_sample("s1"), _sample("A-1"), _sample("s1"), _sample("a_1"), _sample("a.1")]
    places = {"s1": ["f:1", "f:3"], "A-1": ["f:2"], "a_1": ["f:4"], "a.1": ["f:5"]}
    messages = [p.message for p in sample_problems(samples, where=places.get)]
    assert messages == [
        "f:1, f:3: the sample id 's1' is used 2 times.",
        "f:2 and f:4: the sample ids 'A-1' and 'a_1' both name the image file a-1.png.",
        "f:2 and f:5: the sample ids 'A-1' and 'a.1' both name the image file a-1.png.",
    ]


def test_entities_that_share_a_file_are_refused():
    samples = [
        _sample("s1", ("cow", "horse")),
        _sample("s2", ("Cow", "horse")),
        _sample("s3", ("Cow", "horse")),  # the same pair is named once
        _sample("s4", ("cow", "Cow")),
    ]
    messages = [p.message for p in sample_problems(samples)]
    assert messages == [
        "sample 's1' and sample 's2': the entities 'cow' and 'Cow' both name the reference "
        "image images/reference/cow.png.",
        "sample 's4': sample 's4' names the entities 'cow' and 'Cow', which name one image file.",
    ]


def test_every_shipped_config_keeps_the_rule():
    from slim_leakage.slim import list_configs, load_samples

    for config in list_configs():
        assert sample_problems(load_samples(config)) == [], config


def test_ids_that_keep_the_rule_keep_their_file_names():
    # existing runs and leaderboard entries name these files
    assert image_file("vanilla", "pair-c11f9ba5e2f6") == "images/vanilla/pair-c11f9ba5e2f6.png"
    assert image_file("method", "S_1.b", "deleaker") == "images/deleaker/s-1-b.png"
    assert sample_problems([_sample("pair-c11f9ba5e2f6"), _sample("S_1.b")]) == []


# -- the manifest's seal -------------------------------------------------------------------------
def _opened(tmp_path, identity=None):
    run = RunDir(tmp_path / "run")
    identity = identity or {"method": {"name": "m", "config": {"alpha": 1.0}}}
    run.open_manifest(
        identity, samples=SAMPLES, describe=lambda: {"method": identity.get("method"), "cost": {}}
    )
    return run, identity


def _edit(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (
            lambda m: m["identity"]["method"]["config"].update(alpha=2.0),
            "identity.method.config.alpha",
        ),
        (lambda m: m["method"]["config"].update(alpha=2.0), "method.config.alpha"),
        (lambda m: m.update(config_hash="0" * 16), "config_hash"),
        (lambda m: m.pop("created"), "created (removed)"),
        (lambda m: m.update(judge={"model_id": "x"}), "judge.model_id (added)"),
        (lambda m: m["seal"].update(sha256="x"), "seal.sha256"),
    ],
)
def test_a_hand_edited_manifest_is_named_on_resume_and_when_read(tmp_path, change, named):
    run, identity = _opened(tmp_path)
    _edit(run.manifest_path, change)
    with pytest.raises(RunError) as info:
        run.open_manifest(identity, samples=SAMPLES, describe=dict)
    assert "manifest.json was changed after the run wrote it: " in info.value.message
    assert named in info.value.message.split(": ", 1)[1]
    with pytest.raises(RunError, match="was changed after the run wrote it"):
        load_run(run.root)


def test_the_seal_is_renewed_by_each_write_and_left_out_when_read(tmp_path):
    run, identity = _opened(tmp_path)
    manifest = run.read_manifest()
    assert "seal" not in manifest and "seal" in json.loads(run.manifest_path.read_text())
    manifest["cost"] = {"method": {"seconds_per_image": 1.0}}
    run.write_manifest(manifest)
    assert run.open_manifest(identity, samples=SAMPLES, describe=dict)["cost"] == manifest["cost"]


def test_a_manifest_from_before_seals_is_read_and_its_identity_checked(tmp_path):
    run, identity = _opened(tmp_path)
    _edit(run.manifest_path, lambda m: m.pop("seal"))
    assert run.read_manifest()["identity"] == identity
    _edit(run.manifest_path, lambda m: m["identity"]["method"].update(name="other"))
    with pytest.raises(RunError, match="identity \\(or config_hash\\)"):
        run.read_manifest()


def test_a_different_configuration_always_names_a_difference(tmp_path):
    run, identity = _opened(tmp_path, {"backbone": {"args": {"steps": 2}}})
    # a run with finished work (one without any starts afresh under another configuration)
    run.save_generation(
        SAMPLES[0], "vanilla", "M", Output(_image(10)), seconds=0.1, peak_memory_bytes=None
    )
    # equal in Python (2 == 2.0), different in the file: still named
    with pytest.raises(RunConfigMismatchError, match=r"backbone.args.steps was 2, now 2.0\."):
        run.open_manifest({"backbone": {"args": {"steps": 2.0}}}, samples=SAMPLES, describe=dict)
    assert differences({"a": {"b": 1}}, {"a": {}}) == ["a.b was 1, now absent"]
    assert differences(1, True) == ["the value was 1, now True"]


def test_resume_refuses_samples_edited_under_the_same_ids(tmp_path):
    run, identity = _opened(tmp_path)
    edited = [
        dataclasses.replace(SAMPLES[0], prompt="a cat and a horse", entities=("cat", "horse"))
    ]
    with pytest.raises(RunConfigMismatchError) as info:
        run.open_manifest(identity, samples=edited + list(SAMPLES[1:]), describe=dict)
    message = info.value.message
    assert (
        "was started with other samples: sample 's1': entities was ['cow', 'blue jay'], now"
        in message
    )
    assert str(run.samples_path) in info.value.hint


def test_a_method_named_like_a_run_folder_never_shares_it():
    assert image_file("vanilla", "s1") == "images/vanilla/s1.png"
    assert image_file("method", "s1", "vanilla") == "images/method-vanilla/s1.png"
    assert image_file("method", "s1", "Reference") == "images/method-reference/s1.png"
    assert image_file("method", "s1", "deleaker") == "images/deleaker/s1.png"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WORLD_SIZE": "two"}, "WORLD_SIZE='two' is not a whole number"),
        ({"WORLD_SIZE": "2", "RANK": "-1"}, "RANK='-1' is not a whole number"),
        ({"WORLD_SIZE": "2", "RANK": "2"}, "RANK=2 is not below WORLD_SIZE=2"),
    ],
)
def test_a_broken_rank_environment_is_named(monkeypatch, env, named):
    from slim_leakage.errors import ConfigError

    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match=named):
        Shard.from_env()
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert Shard.from_env() == Shard(rank=1, world=2)

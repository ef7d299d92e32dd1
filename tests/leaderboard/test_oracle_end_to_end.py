"""A real toy run, submitted and verified by regeneration: the maintainers' side end to end.

The run is made by ``slim-eval`` itself (embedded toy backbone, oracle judge) on the first
samples of the shipped ``toy-pairs``; verification regenerates those samples from the
registry method and preset, compares the submitted images, and judges its own images.
"""

import json
import shutil

import pytest

from slim_leakage._io import sha256_file
from slim_leakage.errors import ValidationError
from slim_leakage.leaderboard.build import build_entry
from slim_leakage.leaderboard.rejudge import verify_entry_file
from slim_leakage.leaderboard.validate import (
    DatasetReference,
    recompute_aggregates,
    validate_entry,
)
from slim_leakage.metrics import AGGREGATE_FIELDS
from slim_leakage.rundir import load_run

from .conftest import CLEAN_SOURCE

N = 3


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory):
    """A finished deleaker run on the first N toy-pairs samples (made once per module)."""
    pytest.importorskip("slim_leakage.toy.world")
    from slim_leakage.cli.main import main

    root = tmp_path_factory.mktemp("toy") / "run"
    argv = ["--method", "deleaker", "--out", str(root), "--limit", str(N), "--no-references"]
    assert main([*argv, "--no-progress", "--no-report", "--image-metrics", "none"]) == 0
    return root


@pytest.fixture
def toy_slim(monkeypatch):
    """The shipped ``toy-pairs`` cut to the run's first N samples (validation only)."""
    from slim_leakage.leaderboard import validate
    from slim_leakage.slim import dataset_fingerprint, load_samples

    reference = DatasetReference(
        "toy-pairs", dataset_fingerprint("toy-pairs"), tuple(load_samples("toy-pairs")[:N])
    )

    def resolver(config):
        if config != "toy-pairs":
            raise ValidationError(f"Unknown dataset config {config!r}.")
        return reference

    monkeypatch.setattr(validate, "shipped_dataset", resolver)
    return resolver


@pytest.fixture
def clean_source(monkeypatch):
    """The code state the CLI records: a committed tree (whatever git says here)."""
    from slim_leakage.leaderboard import regenerate

    monkeypatch.setattr(regenerate, "source_state", lambda: dict(CLEAN_SOURCE))


def _entry_file(folder, entry, name="toy.json"):
    path = folder / "entries" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2))
    return path


def _recompute(entry):
    entry["metrics"].update(
        {k: v for k, v in recompute_aggregates(entry).items() if k in AGGREGATE_FIELDS}
    )


def _verify(path, run, maintainers, **kw):
    return verify_entry_file(
        path, run, pinned=maintainers.pinned, image_metrics=(), source=CLEAN_SOURCE, **kw
    )


def test_a_real_toy_entry_is_regenerated_and_verified(toy_run, toy_slim, tmp_path, maintainers):
    entry = build_entry(load_run(toy_run), submitter="tests")
    report = validate_entry(json.loads(json.dumps(entry)), dataset=toy_slim)
    assert report.ok and not report.verified, report.problems
    path = _entry_file(maintainers.install(tmp_path / "lb"), entry)
    record = _verify(path, toy_run, maintainers)
    assert record["judge"]["backend"] == "oracle" and record["judge"]["deterministic"]
    assert record["agreement"]["compared"] == N and record["agreement"]["share"] == 1.0
    rep = record["reproduction"]
    assert (rep["method"], rep["backbone"], rep["dataset_config"]) == (
        "deleaker",
        "toy",
        "toy-pairs",
    )
    assert rep["judged"] == "the regenerated images"
    assert rep["compared"] == 2 * N and rep["matching"] == 2 * N and not rep["mismatched_samples"]
    assert all(s["vanilla_match"] and s["method_match"] for s in record["samples"])
    assert record["decision"] == {"verified": True, "reasons": []}
    assert record["attempt"] == 1 and record["history"] == []
    # the models table's figure: every per-image leak flag re-checked on our own images
    flags = record["leak_flags"]
    assert flags["compared"] == 2 * N and flags["agreed"] == 2 * N and flags["differing"] == []


def test_a_flipped_leak_flag_does_not_reproduce(toy_run, toy_slim, tmp_path, maintainers):
    # a model made to look less leaky: its vanilla image said not to leak, all else untouched
    entry = build_entry(load_run(toy_run), submitter="tests")
    row = entry["verdicts"][0]
    assert row["vanilla_leaks"] is not None
    row["vanilla_leaks"] = not row["vanilla_leaks"]
    assert validate_entry(json.loads(json.dumps(entry)), dataset=toy_slim).ok
    path = _entry_file(maintainers.install(tmp_path / "lb"), entry, "flipped.json")
    record = _verify(path, toy_run, maintainers)
    assert not record["decision"]["verified"]
    assert record["leak_flags"]["differing"] == [f"{row['sample_id']}/vanilla"]
    assert any("leak checks reproduced" in r for r in record["decision"]["reasons"])


def test_images_not_made_by_the_declared_method_are_rejected(
    toy_run, toy_slim, tmp_path, maintainers
):
    # the forger's run: one method image replaced by its vanilla image (a "perfect" no-change
    # or a hand-drawn picture alike), the entry's hash and label made to fit, all consistent
    forged_run = tmp_path / "forged-run"
    shutil.copytree(toy_run, forged_run)
    data = load_run(forged_run)
    first = data.samples[0].id
    target = data.image_path(first, "method")
    target.write_bytes(data.image_path(first, "vanilla").read_bytes())
    entry = build_entry(load_run(toy_run), submitter="tests")
    entry["verdicts"][0].update(method_sha256=sha256_file(target), label="no-change")
    entry["verdicts"][0].update(error=None, order_flip=False)
    _recompute(entry)
    assert validate_entry(json.loads(json.dumps(entry)), dataset=toy_slim).ok
    path = _entry_file(maintainers.install(tmp_path / "lb"), entry, "forged.json")
    record = _verify(path, forged_run, maintainers)
    assert not record["decision"]["verified"]
    assert record["reproduction"]["mismatched_samples"] == [first]
    assert "differ from their regeneration" in record["decision"]["reasons"][0]
    # the judge read the regenerated images, whatever the forger submitted
    assert record["samples"][0]["label"] == load_run(toy_run).verdicts[0].label


def test_relabelled_and_hidden_samples_do_not_reproduce(toy_run, toy_slim, tmp_path, maintainers):
    entry = build_entry(load_run(toy_run), submitter="tests")
    folder = maintainers.install(tmp_path / "lb")
    relabelled = json.loads(json.dumps(entry))
    row = relabelled["verdicts"][0]
    row["label"] = "mitigation-major" if row["label"] != "mitigation-major" else "no-change"
    _recompute(relabelled)
    assert validate_entry(relabelled, dataset=toy_slim).ok
    record = _verify(_entry_file(folder, relabelled, "relabelled.json"), toy_run, maintainers)
    assert not record["decision"]["verified"]
    assert any(
        r.startswith(f"the re-judge reproduced {N - 1} of {N}")
        for r in record["decision"]["reasons"]
    )
    # the entry cannot name another data set: a file path as the config is invalid
    other = json.loads(json.dumps(entry))
    other["dataset"]["config"] = "/tmp/my-samples.jsonl"
    with pytest.raises(ValidationError, match="not a valid entry"):
        _verify(_entry_file(folder, other, "path.json"), toy_run, maintainers)


def test_a_method_outside_the_registry_is_listed_not_reproduced(
    toy_run, toy_slim, tmp_path, maintainers
):
    from slim_leakage.leaderboard.validate import validate_file

    folder = maintainers.install(tmp_path / "lb")
    for name, change in (
        ("images.json", {"name": "images", "config": {"folder": "x"}}),
        ("plugin.json", {"name": "my-secret-method", "config": {}}),
    ):
        entry = build_entry(load_run(toy_run), submitter="tests")
        entry["method"] = change
        entry["metrics"]["method"] = change["name"]
        path = _entry_file(folder, entry, name)
        with pytest.raises(ValidationError, match="listed, not reproduced"):
            _verify(path, toy_run, maintainers)
        report = validate_file(path, pinned=maintainers.pinned, dataset=toy_slim)
        assert report.ok and report.status == "listed, not reproduced"
        assert report.unranked  # never ranked


def test_verify_entry_cli_checks_in_the_safe_order(
    toy_run, toy_slim, tmp_path, maintainers, cli, clean_source, monkeypatch
):
    folder = maintainers.install(tmp_path / "lb")
    path = _entry_file(folder, build_entry(load_run(toy_run), submitter="tests"))
    pinned = str(folder / "pinned.json")
    base = ["verify-entry", str(path), "--images", str(toy_run), "--pinned", pinned]
    base += ["--image-metrics", "none"]
    # an invalid entry is refused before the key file is even opened
    bad = json.loads(path.read_text())
    bad["submitted"] = "yesterday"
    bad_path = _entry_file(folder, bad, "bad.json")
    code, _, err = cli("verify-entry", str(bad_path), "--images", str(toy_run),
                       "--key", str(tmp_path / "no-such-key.pem"), "--pinned", pinned)  # fmt: skip
    assert code != 0 and "not a valid entry" in err and "no-such-key" not in err
    # a key that is not the pinned one is refused before anything is generated
    from slim_leakage.leaderboard import regenerate, signing

    real_regenerate = regenerate.regenerate
    other = tmp_path / "other.pem"
    signing.write_private_key(other, signing.generate_key_pair()[0])
    monkeypatch.setattr(regenerate, "regenerate", lambda *a, **k: pytest.fail("generated"))
    code, _, err = cli(*base, "--key", str(other))
    assert code == 2 and "pinned.json pins" in err and "nothing was generated" in err
    # a working tree that differs from its commit is refused
    monkeypatch.setattr(regenerate, "source_state", lambda: {**CLEAN_SOURCE, "dirty": True})
    code, _, err = cli(*base, "--key", str(maintainers.private_path))
    assert code == 2 and "differ from commit" in err
    monkeypatch.setattr(regenerate, "source_state", lambda: dict(CLEAN_SOURCE))
    monkeypatch.setattr(regenerate, "regenerate", real_regenerate)
    code, out, err = cli(*base, "--key", str(maintainers.private_path), "--subset", "2")
    assert code == 0, out + err
    assert "4 of 4 submitted images match" in out
    assert "decision: verified" in out
    record_file = folder / "verifications" / "toy.json"
    record = json.loads(record_file.read_text())["record"]
    assert record["sampling"]["mode"] == "subset" and record["sampling"]["seed_signature"]
    assert record["package"]["git_commit"] == CLEAN_SOURCE["git_commit"]
    code, out, err = cli("validate", str(path), "--pinned", pinned)
    assert code == 0 and f"{path}: verified" in out, out + err
    # validate --rejudge runs the same decision without a key and without writing a record
    record_file.unlink()
    code, out, err = cli("validate", str(path), "--pinned", pinned, "--rejudge", "--images",
                         str(toy_run), "--image-metrics", "none")  # fmt: skip
    assert code == 0, out + err
    assert f"{path}: unverified" in out and "decision: verified" in out
    assert not record_file.exists()


def test_agree_with_the_oracle_run_as_reference(toy_run, cli):
    code, out, err = cli("agree", "--reference-run", str(toy_run), "--run", str(toy_run), "--json")
    assert code == 0, err
    report = json.loads(out.strip().splitlines()[-1])
    assert report["n_samples"] == N
    assert report["spearman"] == pytest.approx(1.0) or report["spearman"] is None
    assert report["direction_agreement"] == 1.0
    assert report["reference"]["judge"] == ["oracle/toy-oracle-v1"]

"""Pinned hub revisions: checked, passed to the loader, and the resolved commit recorded."""

from __future__ import annotations

import pytest

from slim_leakage._hub import check_revision, resolved_commit
from slim_leakage.errors import ConfigError, ModelNotFoundError

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fake_hub_cache(root, repo_id: str, *, repo_type: str = "model", ref: str = "main"):
    """A huggingface_hub cache holding ``repo_id`` at COMMIT, with ``ref`` pointing at it (the
    layout of huggingface_hub's cache: ``<type>s--ORG--NAME/refs`` and ``snapshots``)."""
    folder = root / f"{repo_type}s--{repo_id.replace('/', '--')}"
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / ref).write_text(COMMIT)
    (folder / "snapshots" / COMMIT).mkdir(parents=True)
    (folder / "snapshots" / COMMIT / "model_index.json").write_text("{}")
    return folder


@pytest.mark.parametrize("bad", ["", "a b", "../main", "main;rm", 7])
def test_a_bad_revision_is_named(bad):
    with pytest.raises(ConfigError, match="is not a commit hash, branch or tag name"):
        check_revision(bad, owner="backbone flux-dev")


def test_good_revisions_pass():
    for good in (COMMIT, "main", "v1.0", "refs/pr/3", None):
        assert check_revision(good, owner="x") == good


def test_the_commit_is_read_from_the_local_cache(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    fake_hub_cache(tmp_path, "org/model")
    fake_hub_cache(tmp_path, "org/data", repo_type="dataset", ref="v2")
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    assert resolved_commit("org/model") == COMMIT
    assert resolved_commit("org/model", COMMIT) == COMMIT
    assert resolved_commit("org/data", "v2", repo_type="dataset") == COMMIT
    assert resolved_commit("org/other") is None  # not in the cache: unknown, never guessed
    assert resolved_commit(str(tmp_path)) is None  # a local folder has no hub commit


def test_preflight_takes_a_revision_and_refuses_a_bad_one():
    pytest.importorskip("torch")
    from slim_leakage.backbones import BACKBONES

    preset = BACKBONES.get("flux-dev")
    preset.check_args({"revision": COMMIT}, device="cpu")
    with pytest.raises(ConfigError, match="backbone flux-dev: revision='a b'"):
        preset.check_args({"revision": "a b"}, device="cpu")


def test_the_revision_reaches_from_pretrained_for_a_hub_id_only(monkeypatch, tmp_path):
    pytest.importorskip("diffusers")
    import diffusers

    from slim_leakage.backbones import load_backbone

    seen = []

    def from_pretrained(path, **kwargs):
        seen.append((path, kwargs.get("revision")))
        raise OSError("no weights here")

    monkeypatch.setattr(diffusers.FluxPipeline, "from_pretrained", from_pretrained)
    with pytest.raises(ModelNotFoundError):
        load_backbone("flux-dev", device="cpu", revision=COMMIT)
    (tmp_path / "weights").mkdir()
    with pytest.raises(ModelNotFoundError):
        load_backbone("flux-dev", path=str(tmp_path / "weights"), device="cpu", revision=COMMIT)
    assert seen == [
        ("black-forest-labs/FLUX.1-dev", COMMIT),
        (str(tmp_path / "weights"), None),  # a local folder is what it is
    ]

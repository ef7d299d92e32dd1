import json

import pytest

from slim_leakage.errors import ConfigError, DatasetError
from slim_leakage.slim import data_root, hub_format
from slim_leakage.slim.builder import build_slim
from slim_leakage.slim.push import check_folder, push_folder


def test_push_to_a_local_directory_mirrors_the_folder(tmp_path):
    report = push_folder(data_root(), "my-lab/slim", to_dir=tmp_path / "hub")
    target = tmp_path / "hub" / "my-lab" / "slim"
    assert report.target == str(target)
    assert hub_format.compare_folders(data_root(), target) == []
    names = [c["name"] for c in hub_format.read_card(data_root())["configs"]]
    assert names[:3] == ["pairs", "triplets", "controls"]
    assert report.files == ("README.md", *(f"data/{n}.parquet" for n in names))


def test_a_stale_card_or_stray_file_is_refused(tmp_path):
    work = tmp_path / "slim"
    build_slim(work)
    assert check_folder(work)[0] == "README.md"
    stray = work / "data" / "extra.parquet"
    stray.write_bytes((work / "data" / "controls.parquet").read_bytes())
    with pytest.raises(DatasetError, match="extra.parquet, which the card does not list"):
        push_folder(work, "a/b", to_dir=tmp_path / "hub")
    stray.unlink()
    (work / "data" / "controls.parquet").write_bytes(b"changed")
    with pytest.raises(DatasetError, match="the card is stale"):
        push_folder(work, "a/b", to_dir=tmp_path / "hub")
    (work / "data" / "controls.parquet").unlink()
    with pytest.raises(DatasetError, match="lists 'controls' but .* is missing"):
        push_folder(work, "a/b", to_dir=tmp_path / "hub")
    assert not (tmp_path / "hub").exists()


@pytest.mark.parametrize("repo_id", ["slim", "a/b/c", "/b", "a b/c"])
def test_bad_repo_ids(repo_id, tmp_path):
    with pytest.raises(ConfigError, match="not of the form ORG/NAME"):
        push_folder(data_root(), repo_id, to_dir=tmp_path)


def test_unreachable_hub_gives_a_clear_error():
    pytest.importorskip("huggingface_hub")
    # The test environment keeps the hub offline, which is how an unreachable hub looks.
    with pytest.raises(DatasetError, match="Could not publish .* as 'my-lab/slim'") as info:
        push_folder(data_root(), "my-lab/slim", token="hf_not_a_real_token")
    assert "--to-dir" in info.value.hint


def test_cli_push(cli, tmp_path):
    code, out, _ = cli(
        "dataset", "push", "--repo-id", "my-lab/slim", "--folder", str(data_root()),
        "--to-dir", str(tmp_path), "--json",
    )  # fmt: skip
    assert code == 0
    data = json.loads(out.strip().splitlines()[-1])
    assert data["target"] == str(tmp_path / "my-lab" / "slim")
    code, _, err = cli("dataset", "push", "--repo-id", "nope", "--folder", str(data_root()))
    assert code == 2 and "ORG/NAME" in err


def test_cli_build_and_check(cli, tmp_path):
    out_dir = tmp_path / "slim"
    code, out, _ = cli("dataset", "build", "--out", str(out_dir), "--json")
    assert code == 0
    data = json.loads(out.strip().splitlines()[-1])
    assert data["rows"]["pairs"] >= 840 and data["package_copy"] is None
    code, out, _ = cli("dataset", "build", "--out", str(out_dir), "--check")
    assert code == 0 and "identical" in out
    (out_dir / "README.md").write_text("edited\n")
    code, out, err = cli("dataset", "build", "--out", str(out_dir), "--check", "--json")
    assert code == 1 and "README.md: contents differ" in err
    assert json.loads(out.strip().splitlines()[-1])["identical"] is False
    assert (out_dir / "README.md").read_text() == "edited\n"  # --check writes nothing

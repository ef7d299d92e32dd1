"""One GPU per process: the device each rank takes from the environment a launcher sets.

The environments are the ones torchrun and ``accelerate launch`` give each process they start
(torch/distributed/run.py: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE; accelerate's
``--gpu_ids`` sets CUDA_VISIBLE_DEVICES and ACCELERATE_USE_CPU is always set). The visible GPU
count is injected, so the choice is tested on a machine without GPUs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from slim_leakage.errors import ConfigError
from slim_leakage.rundir import Placement, place_process


def torchrun_env(local_rank: int, nproc: int, *, node: int = 0, nodes: int = 1, **extra) -> dict:
    """What ``torchrun --nnodes NODES --nproc-per-node NPROC`` sets for one worker."""
    env = {
        "RANK": str(node * nproc + local_rank),
        "WORLD_SIZE": str(nodes * nproc),
        "LOCAL_RANK": str(local_rank),
        "LOCAL_WORLD_SIZE": str(nproc),
        "GROUP_RANK": str(node),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "29500",
    }
    return {**env, **extra}


def accelerate_env(local_rank: int, nproc: int, gpu_ids: str | None = None) -> dict:
    """What ``accelerate launch --multi_gpu --num_processes NPROC [--gpu_ids IDS]`` gives."""
    extra = {"ACCELERATE_USE_CPU": "False", "ACCELERATE_MIXED_PRECISION": "no"}
    if gpu_ids is not None:
        extra["CUDA_VISIBLE_DEVICES"] = gpu_ids
    return torchrun_env(local_rank, nproc, **extra)


def test_one_process_keeps_the_requested_device():
    assert place_process(None, env={}, visible=4) == Placement(device=None, source="default")
    assert place_process("cuda:3", env={}, visible=4).device == "cuda:3"
    assert place_process("cpu", env={}, visible=0).device == "cpu"


def test_four_processes_on_four_gpus_take_one_each():
    places = [place_process(None, env=torchrun_env(r, 4), visible=4) for r in range(4)]
    assert [p.device for p in places] == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert [p.rank for p in places] == [0, 1, 2, 3]
    assert {p.source for p in places} == {"local-rank"}
    # --device cuda (no index) means the same: the local rank's GPU
    assert place_process("cuda", env=torchrun_env(2, 4), visible=4).device == "cuda:2"


def test_accelerate_gpu_ids_are_numbered_among_the_visible():
    place = place_process(None, env=accelerate_env(2, 4, gpu_ids="1,3,5,7"), visible=4)
    assert place.device == "cuda:2"
    assert place.visible_id == "5"  # the machine's GPU 5 is this process's cuda:2


def test_two_nodes_use_the_local_rank_not_the_global_one():
    place = place_process(None, env=torchrun_env(1, 4, node=1, nodes=2), visible=4)
    assert (place.rank, place.world, place.local_rank, place.device) == (5, 8, 1, "cuda:1")


def test_more_processes_than_gpus_is_refused_unless_shared():
    with pytest.raises(ConfigError) as info:
        place_process(None, env=accelerate_env(0, 4, gpu_ids="0,1"), visible=2)
    message = info.value.message
    assert "4 processes on this machine but 2 visible cuda device(s)" in message
    assert "CUDA_VISIBLE_DEVICES=0,1" in message
    assert "--num_processes 2" in info.value.hint and "--share-gpus" in info.value.hint
    shared = [
        place_process(None, env=torchrun_env(r, 4), visible=2, share_gpus=True) for r in range(4)
    ]
    assert [p.device for p in shared] == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert {p.source for p in shared} == {"shared"}


def test_one_indexed_gpu_for_every_process_is_refused_unless_shared():
    with pytest.raises(ConfigError, match="puts all 2 processes on this machine on one GPU"):
        place_process("cuda:0", env=torchrun_env(1, 2), visible=2)
    assert place_process("cuda:0", env=torchrun_env(1, 2), visible=2, share_gpus=True).device == (
        "cuda:0"
    )


def test_no_gpu_keeps_the_cpu_default_and_refuses_an_explicit_cuda():
    place = place_process(None, env=torchrun_env(1, 2), visible=0)
    assert place.device is None and place.rank == 1
    with pytest.raises(ConfigError, match="no cuda device for process 1 of 2"):
        place_process("cuda", env=torchrun_env(1, 2), visible=0)
    assert place_process("cpu", env=torchrun_env(1, 2), visible=4).device == "cpu"
    # accelerate launch --cpu
    cpu = {**accelerate_env(0, 2), "ACCELERATE_USE_CPU": "True"}
    assert place_process(None, env=cpu, visible=2).device == "cpu"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({**torchrun_env(0, 2), "LOCAL_RANK": "x"}, "LOCAL_RANK='x' is not a whole number"),
        ({**torchrun_env(0, 2), "LOCAL_RANK": "2"}, "LOCAL_RANK=2 is not below LOCAL_WORLD_SIZE=2"),
    ],
)
def test_a_broken_launcher_environment_is_named(env, named):
    with pytest.raises(ConfigError, match=named):
        place_process(None, env=env, visible=2)


def test_placement_records_the_loaded_device_when_none_was_chosen():
    record = Placement().describe("cpu", gpu=None)
    assert record["device"] == "cpu" and record["loaded_on"] == "cpu"
    placed = Placement(rank=1, world=2, local_rank=1, local_world=2, device="cuda:1")
    assert placed.describe("cuda:1")["device"] == "cuda:1"


_RANK_SCRIPT = textwrap.dedent(
    """
    import sys
    from slim_leakage.rundir import processes
    processes.visible_devices = lambda kind="cuda": 2  # a 2-GPU machine, simulated
    sys.path.insert(0, sys.argv[1])
    from test_run import ScriptedJudge, config
    from pathlib import Path
    from slim_leakage.backbones import load_backbone
    from slim_leakage.run import Run
    cfg = config(Path(sys.argv[2]), device=None)
    run = Run(cfg, judge=ScriptedJudge(), backbone=lambda: load_backbone(
        "tiny-random", device="cpu", num_inference_steps=2, max_sequence_length=64))
    run.execute()
    """
)


def test_each_rank_of_a_launched_run_records_its_device(tmp_path):
    pytest.importorskip("diffusers")
    tests = str(Path(__file__).parent)
    # the samples file every rank reads, written once before they start
    sys.path.insert(0, tests)
    from test_run import write_samples

    write_samples(tmp_path / "samples.jsonl")
    procs = []
    for rank in range(2):
        env = {**os.environ, **torchrun_env(rank, 2), "OMP_NUM_THREADS": "1"}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", _RANK_SCRIPT, tests, str(tmp_path)],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    ranks = manifest["processes"]
    assert [r["rank"] for r in ranks] == [0, 1]
    assert [r["device"] for r in ranks] == ["cuda:0", "cuda:1"]
    assert [r["loaded_on"] for r in ranks] == ["cpu", "cpu"]  # the stand-in loader's choice
    assert {r["source"] for r in ranks} == {"local-rank"}
    assert len(list(iter_lines(tmp_path / "run" / "verdicts.jsonl"))) == 4
    # each entity's reference drawn once, by its owner rank (not by every rank needing it)
    from slim_leakage.rundir.shared_refs import owned
    from test_run import SAMPLES

    everyone = {e for s in SAMPLES for e in s.entities}
    for rank in range(2):
        rows = iter_lines(tmp_path / "run" / "shards" / f"rank-{rank}" / "generations.jsonl")
        drawn = sorted(json.loads(r)["entity"] for r in rows if '"reference"' in r)
        assert drawn == owned(everyone, rank, 2)


def iter_lines(path: Path):
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_an_existing_accelerate_state_chooses_the_device(monkeypatch):
    """A caller that created accelerate's PartialState keeps the device it set."""
    import types

    class PartialState:
        _shared_state = {"device": "cuda:3"}  # what accelerate's set_device chose

        @property
        def device(self):
            return self._shared_state["device"]

    monkeypatch.setitem(
        sys.modules, "accelerate.state", types.SimpleNamespace(PartialState=PartialState)
    )
    place = place_process(None, env=accelerate_env(1, 4), visible=4)
    assert (place.device, place.source) == ("cuda:3", "accelerate")
    # never created: the local rank decides (creating it would start a process group)
    PartialState._shared_state = {}
    assert place_process(None, env=accelerate_env(1, 4), visible=4).device == "cuda:1"

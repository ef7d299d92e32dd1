"""Who works on a run directory: each rank's shard, the lock, and what a failed write says."""

from __future__ import annotations

import dataclasses
import errno
import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputWriteError, RunError
from ..records import Sample

# -- failed writes -------------------------------------------------------------------------------
#: errno values that mean "this folder cannot take more data" (full, read-only, forbidden).
WRITE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES, errno.EPERM}
)


def write_error(path: str | os.PathLike, exc: OSError) -> OutputWriteError:
    """The error for a failed write of ``path``: names the path, the reason and the fix."""
    reason = exc.strerror or str(exc)
    if exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        hint = (
            "Free some disk space (or choose another --out directory), then run the same "
            "command again: finished work is kept."
        )
    elif exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        hint = "Choose a writable directory (another --out), then run the same command again."
    else:
        hint = "Check the path and the disk, then run the same command again."
    return OutputWriteError(f"Cannot write {os.fspath(path)}: {reason}.", hint=hint)


# -- processes: shards and the lock --------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Shard:
    """This process's place among ``world`` processes (from ``accelerate launch`` env vars)."""

    rank: int = 0
    world: int = 1

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Shard:
        """The shard that ``WORLD_SIZE`` and ``RANK`` (or ``LOCAL_RANK``) describe.

        Args:
            env: The environment to read (default ``os.environ``).

        Raises:
            ConfigError: If they are not whole numbers with ``0 <= RANK < WORLD_SIZE``.
        """
        env = os.environ if env is None else env
        world = _env_int(env, "WORLD_SIZE", 1)
        rank = _env_int(env, "RANK", _env_int(env, "LOCAL_RANK", 0))
        if not rank < world:
            raise ConfigError(
                f"RANK={rank} is not below WORLD_SIZE={world}.",
                hint="Unset RANK and WORLD_SIZE for one process, or start with `accelerate "
                "launch`.",
            )
        return cls(rank=rank, world=world)

    def take(self, samples: Sequence[Sample]) -> list[Sample]:
        """This rank's samples: every ``world``-th one, starting at ``rank``."""
        return list(samples[self.rank :: self.world])


class RunLock:
    """An exclusive ``flock`` on ``DIR/.lock`` (released automatically if the process dies)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh = None

    def __enter__(self) -> RunLock:
        import fcntl

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fh = open(self.path, "a+")
        except OSError as exc:
            raise write_error(self.path.parent, exc) from exc
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            holder = fh.read().strip() or "another process"
            fh.close()
            raise RunError(
                f"The run directory {self.path.parent} is in use by {holder}.",
                hint="Wait for that run to finish, or use another --out directory.",
            ) from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {platform.node()}")
        fh.flush()
        self._fh = fh
        return self

    def __exit__(self, *exc) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def lock_held(path: Path) -> bool:
    """Whether another process holds the :class:`RunLock` of ``path`` (a shared ``flock``
    asked without waiting is refused while it is held; where the file system does not share
    locks between machines, this says ``False``: the caller then does not wait)."""
    import fcntl

    try:
        with open(path) as fh:  # closing it gives back the shared lock just taken
            fcntl.flock(fh.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    """A launcher's whole-number variable, or ``default`` when unset."""
    text = env.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigError(
            f"The environment variable {name}={text!r} is not a whole number >= 0.",
            hint="Start several processes with `accelerate launch` (or torchrun), which sets "
            "WORLD_SIZE, RANK, LOCAL_RANK and LOCAL_WORLD_SIZE, or unset them for one process.",
        )
    return value


# -- one device per process ----------------------------------------------------------------------
# What a launcher tells each process it starts, read from the launchers' own sources:
# torchrun (torch/distributed/run.py, "Environment Variables") sets RANK, WORLD_SIZE, LOCAL_RANK
# (the worker's rank on its node) and LOCAL_WORLD_SIZE (the workers on its node);
# `accelerate launch` with several GPUs starts its processes through that same elastic launcher
# (accelerate/commands/launch.py, multi_gpu_launcher), and with --gpu_ids sets
# CUDA_VISIBLE_DEVICES for all of them (accelerate/utils/launch.py, prepare_multi_gpu_env), so
# GPU k of the node is `cuda:k` among the visible ones. Neither picks a GPU for the process:
# accelerate's PartialState does (accelerate/state.py, set_device: LOCAL_RANK modulo the device
# count), but only once it is created, and it silently puts two processes on one GPU when there
# are more processes than GPUs. Here a process takes `cuda:LOCAL_RANK`, and more processes than
# visible GPUs is refused unless the user asks for sharing.

#: Device kinds with several numbered devices per machine.
NUMBERED_KINDS = ("cuda", "xpu")


def visible_devices(kind: str = "cuda") -> int:
    """How many ``kind`` devices this process sees (after ``CUDA_VISIBLE_DEVICES``); 0 if none."""
    try:
        import torch
    except ImportError:
        return 0
    module = getattr(torch, kind, None)
    if module is None or not module.is_available():
        return 0
    return int(module.device_count())


def _accelerate_device() -> str | None:
    """The device accelerate's ``PartialState`` chose, if the caller already created one."""
    import sys

    state = sys.modules.get("accelerate.state")
    partial = getattr(state, "PartialState", None)
    if partial is None or not getattr(partial, "_shared_state", None):
        return None  # never created: creating it here would start a process group
    device = getattr(partial(), "device", None)
    return str(device) if device is not None else None


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where this process works: its ranks and its device.

    Attributes:
        rank: Global rank (``RANK``).
        world: Number of processes (``WORLD_SIZE``).
        local_rank: Rank on this machine (``LOCAL_RANK``).
        local_world: Processes on this machine (``LOCAL_WORLD_SIZE``).
        device: The torch device this process loads the backbone on (``None``: the backbone's
            default, for one process without ``--device``).
        visible_id: The GPU's id as the machine numbers it (from ``CUDA_VISIBLE_DEVICES``,
            when that names the visible GPUs), else ``None``.
        source: How the device was chosen: ``given`` (``--device``), ``local-rank``,
            ``accelerate`` (an existing ``PartialState``), ``default`` or ``shared`` (more
            processes than GPUs, allowed by ``share_gpus``).
    """

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    local_world: int = 1
    device: str | None = None
    visible_id: str | None = None
    source: str = "default"

    def describe(self, loaded_on: str | None = None, **extra: Any) -> dict:
        """The manifest record of this process.

        Args:
            loaded_on: The device the backbone reports once loaded (``None``: not loaded by
                this invocation); ``device`` falls back to it when no device was chosen.
            extra: Further fields (the GPU's name).
        """
        record = dataclasses.asdict(self)
        record["device"] = self.device or loaded_on
        return {**record, "loaded_on": loaded_on, **extra}


def place_process(
    requested: str | None,
    *,
    env: Mapping[str, str] | None = None,
    visible: int | None = None,
    share_gpus: bool = False,
) -> Placement:
    """This process's ranks and device: ``cuda:LOCAL_RANK`` under a launcher.

    One process keeps ``requested`` as it is. Under a launcher, a device without an index
    (``--device cuda``, or none given on a machine with GPUs) becomes the local rank's GPU; a
    GPU named by index for several processes, or more processes on this machine than visible
    GPUs, is refused unless ``share_gpus`` (then process ``k`` takes GPU ``k % count``).

    Args:
        requested: The run's ``--device``.
        env: The environment (default ``os.environ``).
        visible: The visible device count (default: asked from torch).
        share_gpus: Allow several processes on one GPU.

    Raises:
        ConfigError: For bad launcher variables, a GPU shared without ``share_gpus``, or
            ``--device cuda`` under a launcher on a machine without CUDA.
    """
    env = os.environ if env is None else env
    shard = Shard.from_env(env)
    local_world = _env_int(env, "LOCAL_WORLD_SIZE", shard.world)
    local_rank = _env_int(env, "LOCAL_RANK", shard.rank % local_world)
    if not local_rank < local_world:
        raise ConfigError(
            f"LOCAL_RANK={local_rank} is not below LOCAL_WORLD_SIZE={local_world}.",
            hint="Start the processes with `accelerate launch` or torchrun, which set both.",
        )
    place = Placement(shard.rank, shard.world, local_rank, local_world, requested, None, "given")
    if requested is None:
        place = dataclasses.replace(place, source="default")
    if shard.world == 1 and local_world == 1:
        return place
    kind, _, index = (requested or "").partition(":")
    if requested is not None and kind not in NUMBERED_KINDS:
        return place  # cpu, mps: one device, nothing to choose
    if index:
        if local_world > 1 and not share_gpus:
            raise ConfigError(
                f"--device {requested} puts all {local_world} processes on this machine on one "
                "GPU, each with its own copy of the backbone.",
                hint="Leave --device out (or give --device cuda): each process then takes the "
                "GPU of its LOCAL_RANK. Pass --share-gpus to share one GPU on purpose.",
            )
        return place
    if requested is None and env.get("ACCELERATE_USE_CPU", "").lower() == "true":
        return dataclasses.replace(place, device="cpu", source="accelerate")
    kind = kind or "cuda"
    count = visible_devices(kind) if visible is None else visible
    if count == 0:
        if requested is None:
            return place  # no GPU: the default (CPU), as for one process
        raise ConfigError(
            f"--device {requested}: this machine has no {kind} device for process "
            f"{local_rank} of {local_world}.",
            hint="Use --device cpu, or run on a machine with GPUs.",
        )
    if local_world > count and not share_gpus:
        names = env.get("CUDA_VISIBLE_DEVICES")
        seen = f" (CUDA_VISIBLE_DEVICES={names})" if names is not None else ""
        raise ConfigError(
            f"{local_world} processes on this machine but {count} visible {kind} device(s)"
            f"{seen}: several processes would load the backbone onto one GPU.",
            hint=f"Start at most {count} processes (`accelerate launch --num_processes "
            f"{count}`), make more GPUs visible, or pass --share-gpus to share them on purpose.",
        )
    chosen = _accelerate_device() if kind == "cuda" else None
    source = "accelerate" if chosen and chosen.startswith(f"{kind}:") else "local-rank"
    if source == "local-rank":
        chosen = f"{kind}:{local_rank % count}"
    if local_world > count:
        source = "shared"
    number = int(chosen.partition(":")[2])
    ids = [i.strip() for i in env.get("CUDA_VISIBLE_DEVICES", "").split(",") if i.strip()]
    visible_id = ids[number] if kind == "cuda" and number < len(ids) else None
    return dataclasses.replace(place, device=chosen, visible_id=visible_id, source=source)


def device_name(device: str | None) -> str | None:
    """The accelerator's name (``NVIDIA H100 80GB HBM3``) for a CUDA device, else ``None``."""
    if not device or not device.startswith("cuda"):
        return None
    try:
        import torch

        if not torch.cuda.is_available():
            return None
        return str(torch.cuda.get_device_name(torch.device(device)))
    except Exception:  # a device this process cannot query is recorded as unknown
        return None


# -- peak memory ---------------------------------------------------------------------------------
def reset_peak_memory(device: str) -> None:
    """Start counting the device's peak memory afresh (CUDA only)."""
    if device.startswith("cuda"):
        import torch

        torch.cuda.reset_peak_memory_stats(device)


def peak_memory(device: str) -> int | None:
    """Peak bytes allocated on the device since the last reset (CUDA only, else ``None``)."""
    if device.startswith("cuda"):
        import torch

        return int(torch.cuda.max_memory_allocated(device))
    return None

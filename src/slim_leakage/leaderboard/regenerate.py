"""Reproduce an entry: regenerate its images from the package's own sources and compare.

Verification never trusts a submitted image. The maintainers' ``verify-entry`` re-runs the
entry's declared method (a registry name of this package and its full config) on the declared
backbone preset, on the chosen samples of the **shipped** dataset config, generating the
vanilla and the method images itself (:func:`regenerate`); the pinned judge then judges those
images, and the submitted images only have to match them (:func:`compare_images`).

What cannot be regenerated is never verified (:func:`why_not_reproducible`): the ``images``
method (pictures made elsewhere), a method or backbone registered from outside this package
(a plug-in or user code), or a config the method refuses. Such an entry is listed as "listed,
not reproduced" below the reproduced ones.

**Image tolerance.** The toy backbone is deterministic on a CPU up to kernel rounding: two
regenerations of the same 24 toy-pairs samples with one and with two torch threads gave 85 of
96 images byte-identical and, in the other 11, at most one value in 12,288 differing, by 1 of
255 (``docs/leaderboard.md``, "Reproduction"). A regenerated image therefore matches a
submitted one when no value differs by more than :data:`MAX_ABS_DIFF` and at most
:data:`MAX_DIFF_SHARE` of the values differ: about 12 times the measured share, and far below
what any other picture gives (another method's image differs in most values).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

#: Methods that can never be regenerated (their images come from outside the package).
NOT_REGENERABLE = ("images",)
#: Largest per-value difference (of 255) a matching image may show.
MAX_ABS_DIFF = 2
#: Largest share of values that may differ at all in a matching image.
MAX_DIFF_SHARE = 0.001
#: Most pixels an image compared here may have; checked from its header before decoding.
MAX_PIXELS = 4096 * 4096
TOLERANCE_RULE = (
    f"a regenerated image matches the submitted one when both have the same size, no value "
    f"differs by more than {MAX_ABS_DIFF} of 255 and at most {MAX_DIFF_SHARE} of the values "
    "differ (measured between two regenerations: at most 1 of 255 in 8.1e-5 of the values)"
)


def _in_package(registry: Any, name: str) -> str | None:
    """Why registry entry ``name`` is not this package's own code (``None``: it is).

    Only a built-in entry is looked up (importing this package's own module); a plug-in's or
    user code's entry is refused by its origin, never imported.
    """
    if name not in registry:
        return f"{registry.kind} {name!r} is not in this package's registry"
    origin = registry.origin(name)
    if origin != "builtin":
        return f"{registry.kind} {name!r} is registered from {origin}, not from this package"
    target = registry.target(name)
    if target is None:  # already loaded: where its object was defined
        obj = registry.get(name)
        target = getattr(obj, "__module__", None) or type(obj).__module__
    if not str(target).startswith("slim_leakage."):
        return f"{registry.kind} {name!r} comes from {target}, not from this package"
    return None


def why_not_reproducible(entry: dict) -> list[str]:
    """Why the maintainers cannot regenerate ``entry`` (empty: they can).

    Only JSON values are read; the method is built (never run) to check its config.
    """
    from ..backbones import BACKBONES
    from ..errors import SlimError
    from ..methods import METHODS, get_method

    reasons = []
    name = entry["method"]["name"]
    if name in NOT_REGENERABLE:
        reasons.append(f"method {name!r} scores images made elsewhere; they cannot be regenerated")
    else:
        why = _in_package(METHODS, name)
        if why:
            reasons.append(why)
        else:
            try:
                get_method(name, **entry["method"]["config"])
            except (SlimError, TypeError, ValueError) as exc:
                message = getattr(exc, "message", None) or str(exc)
                reasons.append(f"method.config is not a config of {name!r}: {message[:160]}")
    why = _in_package(BACKBONES, entry["backbone"]["preset"])
    if why:
        reasons.append(why.replace("backbone", "backbone preset", 1))
    return reasons


def source_state() -> dict[str, Any]:
    """The code revision that runs, and whether the package's files differ from it.

    ``dirty`` is ``None`` when the package is not in a git checkout (an installed release).
    """
    here = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str | None:
        try:
            out = subprocess.run(
                ["git", *args], cwd=here, capture_output=True, text=True, timeout=10
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return out.stdout if out.returncode == 0 else None

    from .._version import __version__

    commit = git("rev-parse", "HEAD")
    status = git("status", "--porcelain", "--", str(here)) if commit else None
    return {
        "version": __version__,
        "git_commit": commit.strip() if commit else None,
        "dirty": None if status is None else bool(status.strip()),
    }


def regenerate(
    entry: dict,
    ids: Sequence[str],
    out: str | Path,
    *,
    references: bool = False,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Generate the vanilla and method images of ``ids`` as the entry declares (no judging).

    Args:
        entry: A valid entry that :func:`why_not_reproducible` accepts.
        ids: Sample ids of the entry's shipped dataset config.
        out: A new run directory.
        references: Also generate single-entity reference images (a VLM judge reads them).
        log: Where the run's progress lines go (default: dropped).

    Returns:
        The run directory.
    """
    from ..run import Run, RunConfig

    config = RunConfig(
        out=str(out),
        method=entry["method"]["name"],
        method_args=dict(entry["method"]["config"]),
        backbone=entry["backbone"]["preset"],
        judge="none",
        config=entry["dataset"]["config"],
        ids=tuple(ids),
        references=references,
        image_metrics=(),
        report=False,
        progress=False,
    )
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink):
        Run(config, log=log or (lambda msg: None)).execute()
    return Path(out)


def _pixels(path: Path, size: tuple[int, int] | None) -> tuple[Any, str | None]:
    """RGB values of a PNG, after checking its declared size (nothing decoded before)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_PIXELS:
                return None, f"declares {w} x {h} pixels, above the {MAX_PIXELS:,}-pixel limit"
            if size is not None and (w, h) != size:
                return None, f"is {w} x {h}, the regenerated image is {size[0]} x {size[1]}"
            return np.asarray(img.convert("RGB"), dtype=np.int16), None
    except (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError) as exc:
        return None, f"cannot be read as an image ({type(exc).__name__})"


def compare_images(own: Path, submitted: Path) -> dict[str, Any]:
    """Compare a regenerated image with a submitted one under :data:`TOLERANCE_RULE`.

    Returns:
        ``{"identical", "max_abs_diff", "diff_share", "match", "problem"}``.
    """
    import numpy as np

    out: dict[str, Any] = {
        "identical": own.read_bytes() == submitted.read_bytes(),
        "max_abs_diff": None,
        "diff_share": None,
        "match": False,
        "problem": None,
    }
    if out["identical"]:
        out.update(max_abs_diff=0, diff_share=0.0, match=True)
        return out
    mine, _ = _pixels(own, None)
    theirs, problem = _pixels(submitted, (mine.shape[1], mine.shape[0]))
    if problem:
        out["problem"] = f"the submitted image {problem}"
        return out
    diff = np.abs(mine - theirs)
    out["max_abs_diff"] = int(diff.max())
    out["diff_share"] = round(float((diff > 0).mean()), 8)
    out["match"] = out["max_abs_diff"] <= MAX_ABS_DIFF and out["diff_share"] <= MAX_DIFF_SHARE
    return out


def check_submitted(
    entry: dict, run_dir: str | Path
) -> tuple[dict[str, dict[str, Path]], list[str]]:
    """Every submitted image of the entry: present, of the run's declared size, and hashing
    to the SHA-256 the entry records.

    The size is read from the PNG header before anything is decoded (a decompression bomb
    costs nothing) and must equal the ``width`` x ``height`` of the run's generation record.

    Returns:
        ``(sample id -> {role: path}, problems)``; any problem means nothing is compared.
    """
    from PIL import Image, UnidentifiedImageError

    from .._io import sha256_file
    from ..errors import SlimError
    from ..rundir import load_run

    try:
        data = load_run(run_dir)
    except SlimError as exc:
        return {}, [f"{str(run_dir)!r} is not a readable run: {exc.message}"]
    paths: dict[str, dict[str, Path]] = {}
    problems: list[str] = []
    for i, row in enumerate(entry["verdicts"]):
        for role in ("vanilla", "method"):
            key = f"{role}_sha256"
            where = f"verdicts[{i}].{key}"
            try:
                path = data.image_path(row["sample_id"], role)
            except SlimError as exc:
                problems.append(f"{where}: {exc.message}")
                continue
            gen = data.generation(row["sample_id"], role)
            if row[key] is None or gen is None or not path.is_file():
                problems.append(f"{where}: no image of {row['sample_id']!r} in the run")
                continue
            try:
                with Image.open(path) as img:  # reads the header only
                    size = img.size
            except Image.DecompressionBombError:
                problems.append(f"{where}: {str(path)!r} declares too many pixels to decode")
                continue
            except (OSError, UnidentifiedImageError, ValueError):
                problems.append(f"{where}: {str(path)!r} is not an image")
                continue
            if size != (gen.width, gen.height) or size[0] * size[1] > MAX_PIXELS:
                problems.append(
                    f"{where}: {str(path)!r} declares {size[0]} x {size[1]} pixels, the run "
                    f"recorded {gen.width} x {gen.height}"
                )
                continue
            digest = sha256_file(path)
            if digest != row[key]:
                problems.append(f"{where}: {str(path)!r} hashes to {digest}, not {row[key]}")
                continue
            paths.setdefault(row["sample_id"], {})[role] = path
    return paths, problems

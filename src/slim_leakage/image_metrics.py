"""Image-level preservation metrics: LPIPS and KID (method vs vanilla images), VQAScore.

Each metric uses real network weights from the local torch hub cache
(``$TORCH_HOME/hub/checkpoints``). Nothing is downloaded unless the caller allows it
(``slim-eval run --allow-downloads``): without the weights the metric is reported as ``None``
with a note naming the file to provide; no number is ever made up. Tests inject weights (a
checkpoint file, or a feature extractor module for KID).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigError, MetricUnavailableError, SlimError

#: The AlexNet checkpoint LPIPS uses (torchvision's file name).
LPIPS_ALEXNET_FILE = "alexnet-owt-7be5be79.pth"
#: The InceptionV3 checkpoint KID uses (torch-fidelity's file name).
KID_INCEPTION_FILE = "weights-inception-2015-12-05-6726825d.pth"


def _checkpoint_dir() -> Path:
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def _require_local(filename: str, metric: str) -> None:
    """Refuse to let a library download ``filename``: it must already be in the hub cache."""
    folder = _checkpoint_dir()
    if not (folder / filename).is_file():
        raise MetricUnavailableError(
            f"{metric} weights {filename} are not in {folder}",
            hint="Put the file there, or pass --allow-downloads to fetch it.",
        )


#: LPIPS' AlexNet needs at least this many pixels per side; smaller images are upsampled.
LPIPS_MIN_SIDE = 64


def _load_rgb_tensor(path: Path):
    import numpy as np
    import torch
    from PIL import Image

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1)  # (3, H, W) in [0, 1]


def lpips_distance(
    pairs: Sequence[tuple[Path, Path]], *, net: str = "alex", allow_download: bool = False
) -> float:
    """Mean LPIPS between each (vanilla, method) image pair.

    torchmetrics' ``LearnedPerceptualImagePatchSimilarity``: the LPIPS v0.1 linear layers ship
    inside torchmetrics (``functional/image/lpips_models``), the AlexNet features come from
    torchvision's checkpoint in the torch hub cache (the file the unmaintained ``lpips``
    package loaded too).

    Raises:
        MetricUnavailableError: When the backbone weights are not available locally (and
            downloads are not allowed, or fail).
    """
    import torch
    import torch.nn.functional as F
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    if not allow_download and net == "alex":
        _require_local(LPIPS_ALEXNET_FILE, "LPIPS")
    try:
        model = LearnedPerceptualImagePatchSimilarity(net_type=net, reduction="mean")
    except Exception as exc:  # offline: torchvision cannot download the backbone
        raise MetricUnavailableError(
            f"LPIPS {net} weights are not available ({type(exc).__name__})",
            hint=f"Put {LPIPS_ALEXNET_FILE} in $TORCH_HOME/hub/checkpoints.",
        ) from exc
    model.eval()
    values = []
    with torch.no_grad():
        for a_path, b_path in pairs:
            a = _load_rgb_tensor(a_path)[None] * 2 - 1  # LPIPS expects [-1, 1]
            b = _load_rgb_tensor(b_path)[None] * 2 - 1
            if min(a.shape[-2:]) < LPIPS_MIN_SIDE:
                scale = LPIPS_MIN_SIDE / min(a.shape[-2:])
                a = F.interpolate(a, scale_factor=scale, mode="bilinear", align_corners=False)
                b = F.interpolate(b, scale_factor=scale, mode="bilinear", align_corners=False)
            # float rounding can step a pixel just outside [-1, 1], which torchmetrics refuses
            values.append(float(model(a.clamp(-1, 1), b.clamp(-1, 1))))
    return sum(values) / len(values)


def kid_score(
    pairs: Sequence[tuple[Path, Path]],
    *,
    feature: Any = None,
    subset_size: int = 50,
    allow_download: bool = False,
) -> tuple[float, float]:
    """KID between the vanilla images (reference) and the method images.

    Args:
        pairs: (vanilla, method) image paths.
        feature: A feature extractor ``nn.Module`` mapping uint8 images (N, 3, H, W) to (N, D);
            default: torchmetrics' InceptionV3 (needs torch-fidelity and its weights).
        subset_size: KID subset size (capped at the number of pairs).

    Returns:
        (mean, std) of the KID estimate.

    Raises:
        MetricUnavailableError: For fewer than 2 pairs, missing Inception weights, or a failed
            computation.
    """
    import torch
    import torch.nn.functional as F
    from torchmetrics.image.kid import KernelInceptionDistance

    n = len(pairs)
    if n < 2:
        raise MetricUnavailableError(
            f"KID needs at least 2 image pairs, got {n}",
            hint="Evaluate at least 2 samples, or leave kid out of --image-metrics.",
        )
    if feature is None and not allow_download:
        _require_local(KID_INCEPTION_FILE, "KID")
    try:
        kid = KernelInceptionDistance(
            feature=feature if feature is not None else 2048,
            subset_size=min(subset_size, n),
            normalize=False,
        )
    except Exception as exc:
        raise MetricUnavailableError(
            f"KID's Inception weights are not available ({type(exc).__name__}: {exc})",
            hint=f"Put {KID_INCEPTION_FILE} in $TORCH_HOME/hub/checkpoints, or pass "
            "--allow-downloads to fetch it.",
        ) from exc

    def batch(paths):
        imgs = [(_load_rgb_tensor(p) * 255).round().to(torch.uint8) for p in paths]
        x = torch.stack(imgs)
        if feature is None and x.shape[-1] < 75:
            # InceptionV3 needs at least 75 px; upsample (uint8) rather than fail
            x = F.interpolate(x.float(), size=(299, 299), mode="bilinear").round().to(torch.uint8)
        return x

    try:
        kid.update(batch([a for a, _ in pairs]), real=True)
        kid.update(batch([b for _, b in pairs]), real=False)
        mean, std = kid.compute()
    except Exception as exc:
        raise MetricUnavailableError(f"KID failed ({type(exc).__name__}: {exc})") from exc
    return float(mean), float(std)


def vqa_score(images: Sequence[Path], prompts: Sequence[str], **options: Any) -> float:
    """Mean VQAScore of images against their own prompts, one forward pass per image.

    See :mod:`slim_leakage.vqascore` (a local VLM through the ``hf-local`` judge's loading);
    ``options`` are those of :func:`slim_leakage.vqascore.vqa_score`.

    Raises:
        MetricUnavailableError: When the model is not on this machine or does not load.
    """
    from .vqascore import vqa_score as score

    return score(images, prompts, **options)


# -- the registry ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ImageMetric:
    """One image metric the run can compute.

    Attributes:
        name: Its name in ``--image-metrics``.
        fields: The RunMetrics fields it fills.
        compute: ``compute(pairs, prompts=..., kid_feature=..., allow_download=...)`` -> a
            value per field; raises :class:`MetricUnavailableError` when it cannot be computed.
    """

    name: str
    fields: tuple[str, ...]
    compute: Callable[..., dict[str, float]]


def _lpips(pairs, *, prompts, kid_feature, allow_download) -> dict[str, float]:
    return {"lpips": lpips_distance(pairs, allow_download=allow_download)}


def _kid(pairs, *, prompts, kid_feature, allow_download) -> dict[str, float]:
    mean, std = kid_score(pairs, feature=kid_feature, allow_download=allow_download)
    return {"kid": mean, "kid_std": std}


def _vqascore(pairs, *, prompts, kid_feature, allow_download) -> dict[str, float]:
    method_images = [b for _, b in pairs]
    return {
        "vqascore": vqa_score(method_images, prompts[: len(pairs)], allow_download=allow_download)
    }


#: Name -> metric, in the order their fields appear in ``metrics.json``.
IMAGE_METRICS: dict[str, ImageMetric] = {
    metric.name: metric
    for metric in (
        ImageMetric("lpips", ("lpips",), _lpips),
        ImageMetric("kid", ("kid", "kid_std"), _kid),
        ImageMetric("vqascore", ("vqascore",), _vqascore),
    )
}


def check_metric_names(names: Sequence[str]) -> None:
    """Refuse names that are not in :data:`IMAGE_METRICS`.

    Raises:
        ConfigError: Naming the unknown ones and the known ones.
    """
    unknown = set(names) - set(IMAGE_METRICS)
    if unknown:
        raise ConfigError(
            f"Unknown image metric(s) {sorted(unknown)}.",
            hint=f"Use any of {', '.join(IMAGE_METRICS)} (comma-separated), or none.",
        )


def _note(exc: Exception) -> str:
    """Why a metric is missing, as ``metrics.json`` keeps it ("not computed: why; the fix")."""
    if isinstance(exc, SlimError) and exc.hint:
        fix = exc.hint[:1].lower() + exc.hint[1:].rstrip(".")
        return f"not computed: {exc.message}; {fix}"
    return f"not computed: {exc}"


def compute_image_metrics(
    pairs: Sequence[tuple[Path, Path]],
    *,
    metrics: Sequence[str] = ("lpips", "kid"),
    prompts: Sequence[str] = (),
    kid_feature: Any = None,
    allow_download: bool = False,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Compute the requested metrics; unavailable ones are ``None`` with a note in ``notes``.

    ``allow_download`` lets the metric libraries fetch missing network weights; by default
    only weights already in the local torch hub cache are used.
    """
    check_metric_names(metrics)
    out: dict[str, Any] = {f: None for m in IMAGE_METRICS.values() for f in m.fields}
    out["notes"] = {}
    if not pairs:
        return out
    for name in metrics:
        try:
            out.update(
                IMAGE_METRICS[name].compute(
                    pairs, prompts=prompts, kid_feature=kid_feature, allow_download=allow_download
                )
            )
        except (MetricUnavailableError, ImportError) as exc:
            out["notes"][name] = _note(exc)
            if log:
                log(f"{name}: not computed ({out['notes'][name].removeprefix('not computed: ')})")
    return out

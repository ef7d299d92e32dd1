"""``images``: score any external method from a folder of its images.

Methods that are not reimplemented here (3DIS, QwenFLUX, a user's own model) are evaluated by
generating their images elsewhere and pointing this method at the folder. Each image is named
by the sample id, optionally with the seed: ``<sample_id>.png`` or ``<sample_id>_<seed>.png``
(``.jpg``, ``.jpeg`` and ``.webp`` work too). Every image is checked before the run starts, so a
missing, unreadable or mis-sized image is reported with the sample that needs it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError, DatasetError
from ..records import Sample
from .base import Method, MethodOutput

#: File extensions looked up, in this order.
EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")


@dataclasses.dataclass(frozen=True)
class ImagesConfig:
    """Options of ``images``.

    Attributes:
        folder: The folder holding one image per sample.
        label: Optional name of the external method (3dis ...), recorded with each generation.
        resize: Resize images whose size differs from the backbone's setting instead of
            failing (off by default: a judge comparing a 1024px image against a 512px vanilla
            image is not a fair comparison, so mis-sized images are an error).
    """

    folder: str = ""
    label: str = ""
    resize: bool = False

    def __post_init__(self) -> None:
        if not self.folder:
            raise ConfigError(
                "method 'images' needs folder=PATH (the folder of the external method's images).",
                hint="Pass --method-arg folder=/path/to/images (files named <sample_id>.png).",
            )
        # Checked with the options, before a run directory exists or a backbone loads.
        if not Path(self.folder).expanduser().is_dir():
            raise ConfigError(
                f"Image folder {self.folder!r} does not exist or is not a folder.",
                hint="Pass --method-arg folder= the directory holding <sample_id>.png files.",
            )


def candidate_names(sample: Sample) -> list[str]:
    """File names that may hold ``sample``'s image, in lookup order."""
    stems = [f"{sample.id}_{sample.seed}", sample.id]
    return [stem + ext for stem in stems for ext in EXTENSIONS]


class Images(Method):
    """Read each sample's image from a folder instead of generating it.

    Needs ``images`` (the folder); works beside any backbone (the backbone still generates the
    vanilla reference). Images must have the backbone's width and height unless
    ``resize=true``.
    """

    name = "images"
    Config = ImagesConfig
    needs = ("images",)
    description = "score an external method from a folder of its images (<sample_id>[_<seed>].png)"

    def _folder(self) -> Path:
        folder = Path(self.config.folder).expanduser()
        if not folder.is_dir():
            raise ConfigError(
                f"Image folder {str(folder)!r} does not exist or is not a folder.",
                hint="Pass folder= the directory holding <sample_id>.png files.",
            )
        return folder

    def find(self, sample: Sample) -> Path:
        """The image file of ``sample``.

        Raises:
            DatasetError: If none, or more than one, candidate file exists.
        """
        folder = self._folder()
        found = [folder / n for n in candidate_names(sample) if (folder / n).is_file()]
        with_seed = [p for p in found if p.stem == f"{sample.id}_{sample.seed}"]
        if len(with_seed) == 1:
            return with_seed[0]
        if len(with_seed) > 1 or len(found) > 1:
            raise DatasetError(
                f"Sample {sample.id!r} has several images in {str(folder)!r}: "
                f"{', '.join(p.name for p in found)}.",
                hint="Keep exactly one image per sample (and seed).",
            )
        if not found:
            raise DatasetError(
                f"Sample {sample.id!r} (seed {sample.seed}) has no image in {str(folder)!r}.",
                hint=f"Add {sample.id}.png (or {sample.id}_{sample.seed}.png) to the folder.",
            )
        return found[0]

    def _load(self, sample: Sample, size: tuple[int, int]):
        from PIL import Image, UnidentifiedImageError

        path = self.find(sample)
        try:
            with Image.open(path) as img:
                img.load()
                image = img.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(
                f"Sample {sample.id!r}: cannot read the image {str(path)!r} ({exc}).",
                hint="Replace it with a valid PNG or JPEG.",
            ) from exc
        if image.size != size:
            if not self.config.resize:
                raise DatasetError(
                    f"Sample {sample.id!r}: image {path.name!r} is {image.size[0]}x"
                    f"{image.size[1]}, but the backbone generates {size[0]}x{size[1]}.",
                    hint="Export the images at the backbone's size, or pass resize=true.",
                )
            image = image.resize(size, Image.Resampling.LANCZOS)
        return path, image

    @staticmethod
    def _size(backbone) -> tuple[int, int]:
        return (int(backbone.settings.width), int(backbone.settings.height))

    def check_samples(self, samples: Sequence[Sample], settings=None) -> list:
        """The problems of ``samples``' image files, found before any backbone loads.

        Args:
            samples: The run's samples.
            settings: The backbone's generation settings, to check each image's size too.

        Returns:
            One error per sample whose image is missing, doubled, unreadable or mis-sized.
        """
        from ..errors import SlimError

        size = (int(settings.width), int(settings.height)) if settings is not None else None
        problems: list[SlimError] = []
        for sample in samples:
            try:
                if size is None:
                    self.find(sample)
                else:
                    self._load(sample, size)
            except SlimError as exc:
                problems.append(exc)
        return problems

    def prepare(self, backbone, samples: Sequence[Sample]) -> None:
        """Check that every sample has exactly one readable image of the right size."""
        super().prepare(backbone, samples)
        size = self._size(backbone)
        for sample in samples:
            self._load(sample, size)

    def generate(self, backbone, samples: Sequence[Sample]) -> list[MethodOutput]:
        """Return each sample's image from the folder (``extra`` records the source file)."""
        from .._io import sha256_file

        size = self._size(backbone)
        outputs = []
        for sample in samples:
            path, image = self._load(sample, size)
            extra = {"source": str(path), "source_sha256": sha256_file(path)}
            if self.config.label:
                extra["external_method"] = self.config.label
            outputs.append(MethodOutput(image=image, extra=extra))
        return outputs

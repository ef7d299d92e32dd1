"""``--backbone images``: a folder of images made anywhere stands in for the generator.

Hosted APIs, closed models and other frameworks cannot run inside a run, but their images can
be judged: ``slim-eval dataset export-prompts --config CONFIG --out DIR/prompts.jsonl`` writes
one row per image the run will ask for (:func:`export_rows`: each sample's ``id``, ``prompt``,
``seed``, ``width``, ``height``, and one single-entity reference row per entity, drawn by the
run's rule "a/an ENTITY", seed 0), the external generator writes ``DIR/<id>.png`` for each row
(or ``<id>_<seed>.png``; ``.jpg``, ``.jpeg``, ``.webp`` too: the ``images`` method's naming), and
``--backbone images --backbone-arg folder=DIR`` serves them: ``generate(prompts, seeds)`` looks
each (prompt, seed) up in the rows and returns its file.

Every listed image is checked when the backbone loads, before the run writes any image: present
exactly once, readable, and of the listed size (``resize=true`` resizes instead of failing, as
the ``images`` method does). A prompt that is not in the rows (a method that rewrites prompts)
is an error naming it. The manifest records the folder, the digest of the rows file and the
``label=`` given (the generator's name, free text); the run cannot regenerate such images, so
the leaderboard lists them as "listed, not reproduced".
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..errors import ConfigError, DatasetError, ModelNotFoundError
from .base import Backbone, GenerationSettings, Preset

#: The rows file's name inside the folder (``prompts=`` names another).
PROMPTS_FILE = "prompts.jsonl"
#: Image file extensions looked up, in this order (as the ``images`` method).
EXTENSIONS: tuple[str, ...] = (".png", ".jpg", ".jpeg", ".webp")
#: The backbone arguments of this preset.
FOLDER_ARGS = ("folder", "prompts", "label", "resize")


def export_rows(
    samples: Sequence[Any], *, width: int, height: int, references: bool = True
) -> list[dict]:
    """The rows an external generator needs: one per sample image and per reference image.

    Args:
        samples: The run's samples (``id``, ``prompt``, ``seed``, ``entities``).
        width: Image width the run expects.
        height: Image height.
        references: Add one reference row per entity (``reference-<entity slug>``).
    """
    from ..reference_images import REFERENCE_SEED, reference_prompt
    from ..rundir import slug

    rows = [
        {"id": s.id, "prompt": s.prompt, "seed": s.seed, "width": width, "height": height}
        for s in samples
    ]
    if references:
        for entity in sorted({e for s in samples for e in s.entities}):
            rows.append(
                {
                    "id": f"reference-{slug(entity)}",
                    "prompt": reference_prompt(entity),
                    "seed": REFERENCE_SEED,
                    "width": width,
                    "height": height,
                    "entity": entity,
                }
            )
    return rows


def find_image(folder: Path, row_id: str, seed: int) -> Path:
    """The one image file of a row: ``<id>_<seed>.<ext>`` first, else ``<id>.<ext>``.

    Raises:
        DatasetError: If none, or more than one, candidate file exists.
    """
    with_seed = [folder / f"{row_id}_{seed}{x}" for x in EXTENSIONS]
    plain = [folder / f"{row_id}{x}" for x in EXTENSIONS]
    seeded = [p for p in with_seed if p.is_file()]
    found = seeded + [p for p in plain if p.is_file()]
    if len(seeded) == 1:
        return seeded[0]
    if len(found) > 1:
        raise DatasetError(
            f"Image {row_id!r} has several files in {str(folder)!r}: "
            f"{', '.join(p.name for p in found)}.",
            hint="Keep exactly one image per row of prompts.jsonl.",
        )
    if not found:
        raise DatasetError(
            f"Image {row_id!r} (seed {seed}) is missing from {str(folder)!r}.",
            hint=f"Generate it and save it as {row_id}.png (the prompts.jsonl row gives the "
            "prompt, seed and size).",
        )
    return found[0]


def read_rows(path: Path) -> list[dict]:
    """The rows of a prompts file, each checked for its fields.

    Raises:
        DatasetError: For a line that is not a row (naming the file and line).
    """
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            ok = isinstance(row, dict) and all(k in row for k in ("id", "prompt", "seed"))
        except json.JSONDecodeError:
            ok = False
        if not ok:
            raise DatasetError(
                f"{str(path)!r} line {number} is not a prompts row (id, prompt, seed).",
                hint="Write it with `slim-eval dataset export-prompts`.",
            )
        rows.append(row)
    return rows


class FolderBackbone(Backbone):
    """A backbone that returns the folder's image of each (prompt, seed).

    Args:
        folder: The image folder.
        rows: The prompts rows.
        resize: Resize mis-sized images instead of failing.
        source: Provenance for the manifest (folder, rows digest, label).
        **kwargs: As :class:`~slim_leakage.backbones.base.Backbone`.
    """

    def __init__(
        self, *, folder: Path, rows: list[dict], resize: bool, source: dict, **kwargs: Any
    ) -> None:
        super().__init__(**kwargs)
        self.folder = folder
        self.rows = {(r["prompt"], int(r["seed"])): r for r in rows}
        self.resize = resize
        self.source = source

    def describe(self) -> dict:
        """Provenance: the folder, the rows file's digest and the generator's label."""
        return {**super().describe(), **self.source}

    def image(self, prompt: str, seed: int):
        """The folder's image for ``(prompt, seed)``, checked and converted to RGB.

        Raises:
            DatasetError: No row for it, its file missing, unreadable or of another size.
        """
        from PIL import Image, UnidentifiedImageError

        row = self.rows.get((prompt, int(seed)))
        if row is None:
            raise DatasetError(
                f"The image folder {str(self.folder)!r} has no image for prompt {prompt!r} "
                f"with seed {seed}.",
                hint="Export the prompts of this run (`slim-eval dataset export-prompts`) and "
                "generate each row; methods that rewrite prompts cannot run on a folder.",
            )
        path = find_image(self.folder, row["id"], int(row["seed"]))
        try:
            with Image.open(path) as img:
                img.load()
                image = img.convert("RGB")
        except (UnidentifiedImageError, OSError) as exc:
            raise DatasetError(
                f"Image {row['id']!r}: cannot read {str(path)!r} ({exc}).",
                hint="Replace it with a valid PNG or JPEG.",
            ) from exc
        size = (
            int(row.get("width") or self.settings.width),
            int(row.get("height") or self.settings.height),
        )
        if image.size != size:
            if not self.resize:
                raise DatasetError(
                    f"Image {row['id']!r}: {path.name!r} is {image.size[0]}x{image.size[1]}, "
                    f"but prompts.jsonl asks for {size[0]}x{size[1]}.",
                    hint="Export the images at the listed size, or pass resize=true.",
                )
            image = image.resize(size, Image.Resampling.LANCZOS)
        return image

    def generate(self, prompts: Sequence[str], seeds: Sequence[int], **overrides) -> list:
        """The folder's image of each (prompt, seed), in order."""
        if len(prompts) != len(seeds):
            raise ConfigError(f"Got {len(prompts)} prompts but {len(seeds)} seeds.")
        return [self.image(p, s) for p, s in zip(prompts, seeds)]


class FolderPreset(Preset):
    """``--backbone images --backbone-arg folder=DIR``: images made elsewhere, checked."""

    name = "images"
    family = "images"
    model_id = "folder=DIR (images made elsewhere, named by prompts.jsonl)"
    dtype = "float32"
    description = (
        "a folder of images made anywhere: --backbone-arg folder=DIR holding prompts.jsonl "
        "(slim-eval dataset export-prompts) and <id>.png per row; label=, resize="
    )

    def check_args(
        self, overrides: dict, *, device: str | None = None, dtype: str | None = None
    ) -> tuple[GenerationSettings, None]:
        """Validate the arguments without reading images: only ``folder``, ``prompts``,
        ``label``, ``resize``; generation settings belong to the external generator.

        Raises:
            ConfigError: An unknown argument, a generation setting, or a folder or prompts
                file that does not exist.
        """
        settings = {k: v for k, v in overrides.items() if k not in FOLDER_ARGS}
        if settings:
            from .._config import build_config

            # an unknown name gets the usual "no option" error with a did-you-mean
            build_config(
                GenerationSettings,
                {**dataclasses.asdict(GenerationSettings()), **settings},
                owner=f"backbone {self.name}",
            )
            raise ConfigError(
                f"backbone images: {', '.join(sorted(settings))} is a generation setting; the "
                "images were generated elsewhere.",
                hint="Set the size when exporting the prompts; give only folder=, prompts=, "
                "label=, resize=.",
            )
        folder = overrides.get("folder")
        if folder is not None and not Path(str(folder)).expanduser().is_dir():
            raise ConfigError(
                f"backbone images: folder={folder!r} does not exist or is not a folder.",
                hint="Give --backbone-arg folder=DIR, the folder of the generated images.",
            )
        return self.settings, None

    def load(self, *, path=None, device=None, dtype=None, **overrides) -> FolderBackbone:
        """Read the rows, check every listed image, and serve them.

        Raises:
            ModelNotFoundError: No folder, or no prompts file in it.
            DatasetError: A listed image missing, doubled, unreadable or mis-sized.
        """
        self.check_args(overrides)
        given = path or overrides.get("folder")
        if not given:
            raise ConfigError(
                "The images backbone needs the folder of images.",
                hint="Give --backbone-arg folder=DIR.",
            )
        folder = Path(str(given)).expanduser()
        prompts = Path(str(overrides.get("prompts") or folder / PROMPTS_FILE)).expanduser()
        if not prompts.is_file():
            raise ModelNotFoundError(
                f"The image folder {str(folder)!r} has no prompts file {str(prompts)!r}.",
                hint="Write it with `slim-eval dataset export-prompts --config CONFIG --out "
                f"{folder / PROMPTS_FILE}`, generate one image per row, then run again.",
            )
        rows = read_rows(prompts)
        resize = str(overrides.get("resize", "false")).lower() in ("1", "true", "yes")
        sizes = {(int(r.get("width") or 512), int(r.get("height") or 512)) for r in rows}
        width, height = (
            sizes.pop() if len(sizes) == 1 else (self.settings.width, self.settings.height)
        )
        backbone = FolderBackbone(
            folder=folder,
            rows=rows,
            resize=resize,
            source={
                "folder": str(folder),
                "prompts_sha256": sha256_file(prompts),
                "images": len(rows),
                "label": str(overrides.get("label") or ""),
            },
            name=self.name,
            family=self.family,
            pipe=None,
            settings=dataclasses.replace(self.settings, width=width, height=height),
            device="cpu",
            dtype="n/a",
            model_id=str(folder),
        )
        for row in rows:  # every image checked before the run writes one
            backbone.image(row["prompt"], int(row["seed"]))
        return backbone


FOLDER = FolderPreset()

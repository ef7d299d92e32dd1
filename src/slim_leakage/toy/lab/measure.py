"""Measurements of the toy model, in generation: mask localisation, leakage, and the oracle itself.

- :func:`measure_generation` generates look-alike and mixed pairs, reads every image with the
  oracle (:mod:`..reading`) and reports the vanilla leakage rate with its control; with
  ``masks=True`` it also runs DeLeaker (``slim_leakage.methods.deleaker``) and reports how much
  of each entity's final DeLeaker mask falls inside the entity's own region, inside the other
  entity's region, and the region's share of the image (what a random mask would score). Regions
  are the oracle's segmentation of the generated image itself, not of a render.
- :func:`measure_oracle` renders look-alike pairs with pattern transfer of known strength
  injected into one entity and reports the oracle's detection and false-alarm rates.

Figures are means over entities with Wilson 95% intervals for rates.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ...metrics import wilson
from ..reading import read_image
from ..world import (
    ENTITY_TYPES,
    FAMILIES,
    IMAGE_SIZE,
    PATTERNS,
    PERIOD,
    caption,
    entity_type,
    lookalike_pairs,
    pattern_texture,
    place,
    render,
)
from .train import TEXT_LEN


def rate(flags: Sequence[bool]) -> dict:
    """``{"rate", "k", "n", "ci95"}`` of a list of booleans."""
    k, n = int(sum(flags)), len(flags)
    return {"rate": round(k / n, 4) if n else None, "k": k, "n": n, "ci95": wilson(k, n)}


def mixed_pairs(rng: np.random.Generator, n: int) -> list[tuple[str, str]]:
    """``n`` random ordered pairs of entities from two different families."""
    out = []
    for _ in range(n):
        fa, fb = rng.choice(len(FAMILIES), size=2, replace=False)
        a = FAMILIES[fa].members[rng.integers(3)][0]
        b = FAMILIES[fb].members[rng.integers(3)][0]
        out.append((a, b))
    return out


def test_pairs(
    n_lookalike: int, n_mixed: int, seed: int = 1234
) -> list[tuple[tuple[str, str], int, str]]:
    """Evaluation pairs: ``((a, b), image seed, kind)``, look-alikes cycling through all 24."""
    rng = np.random.default_rng(seed)
    la = lookalike_pairs()
    out = [(la[i % len(la)], seed + i, "lookalike") for i in range(n_lookalike)]
    out += [(p, seed + 10_000 + i, "mixed") for i, p in enumerate(mixed_pairs(rng, n_mixed))]
    return out


def _token_region(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """A pixel mask -> a token-grid mask (a token is in when most of its pixels are)."""
    h, w = mask.shape
    rows, cols = grid
    return mask.reshape(rows, h // rows, cols, w // cols).mean(axis=(1, 3)) >= 0.5


def generate(
    pipe,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    steps: int,
    batch: int = 16,
    entities=None,
    deleaker_options=None,
):
    """Generate images (optionally under DeLeaker); returns ``(images, masks per image)``."""
    import torch

    images, masks = [], []
    for i in range(0, len(prompts), batch):
        p = list(prompts[i : i + batch])
        gens = [torch.Generator().manual_seed(int(s)) for s in seeds[i : i + batch]]
        kwargs = {
            "prompt": p,
            "height": IMAGE_SIZE,
            "width": IMAGE_SIZE,
            "num_inference_steps": steps,
            "max_sequence_length": TEXT_LEN,
            "generator": gens,
        }
        if entities is None:
            out = pipe(**kwargs).images
            masks.extend([{}] * len(p))
        else:
            from ...methods.deleaker import deleaker

            with deleaker(
                pipe,
                entities=[list(e) for e in entities[i : i + batch]],
                **(deleaker_options or {}),
            ) as run:
                out = pipe(**kwargs).images
            masks.extend(
                {e: np.asarray(m, dtype=bool) for e, m in run.final_masks(b).items()}
                for b in range(len(p))
            )
        images.extend(out)
    return images, masks


def _localisation(readings, masks, nouns) -> list[dict]:
    """Own/other/chance shares of each entity's mask, regions taken from the oracle's readings."""
    out = []
    for j, noun in enumerate(nouns):
        m = masks.get(noun)
        r, o = readings[j], readings[1 - j]
        if m is None or not r.found or not o.found:
            continue
        grid = m.shape
        own = _token_region(r.mask, grid)
        other = _token_region(o.mask, grid)
        size = int(m.sum())
        out.append(
            {
                "noun": noun,
                "mask_tokens": size,
                "own": float((m & own).sum() / size) if size else math.nan,
                "other": float((m & other).sum() / size) if size else math.nan,
                "chance": float(own.mean()),
            }
        )
    return out


def _summarise_loc(rows: list[dict]) -> dict:
    valid = [r for r in rows if r["mask_tokens"] > 0]
    if not rows:
        return {"n": 0}

    def mean(key):
        return round(float(np.mean([r[key] for r in valid])), 4) if valid else None

    return {
        "n": len(rows),
        "empty_masks": len(rows) - len(valid),
        "own": mean("own"),
        "other": mean("other"),
        "chance": mean("chance"),
        "mask_tokens": mean("mask_tokens"),
    }


def _summarise_leak(readings_per_image: list, kinds: list[str]) -> dict:
    out = {}
    for kind in sorted(set(kinds)):
        ents = [r for rs, k in zip(readings_per_image, kinds) if k == kind for r in rs]
        found = [r for r in ents if r.found]
        out[kind] = {
            "entities": len(ents),
            "found": rate([r.found for r in ents]),
            "leak": rate([r.leaks for r in found]),
            "control": rate([r.control_fires for r in found]),
            "own_share": round(float(np.mean([r.own for r in found])), 4) if found else None,
            "other_share": round(float(np.mean([r.other for r in found])), 4) if found else None,
            "control_share": round(float(np.mean([r.control for r in found])), 4)
            if found
            else None,
            # which entities go missing (merged into a look-alike, or never drawn)
            "found_by_pattern": {
                p: rate([r.found for r in ents if entity_type(r.noun).pattern == p])
                for p in PATTERNS
            },
        }
    return out


def measure_generation(
    pipe,
    *,
    n_lookalike: int = 96,
    n_mixed: int = 48,
    n_single: int = 48,
    steps: int = 20,
    masks: bool = True,
    seed: int = 1234,
    batch: int = 16,
) -> dict:
    """Vanilla leakage with its control and, with ``masks``, DeLeaker's mask localisation.

    Args:
        pipe: The toy ``FluxPipeline``.
        n_lookalike: Look-alike pair images (cycling through the 24 ordered look-alike pairs).
        n_mixed: Mixed-family pair images.
        n_single: Single-entity images (cycling through the 12 entity types): how often the
            model draws a wrong pattern with no other entity to borrow it from, the floor under
            the pairs' control rate.
        steps: Denoising steps.
        masks: Also run DeLeaker and measure its masks (in its own images, and with its edits
            switched off, in the vanilla images).
        seed: Seed of the pair list and image seeds.
        batch: Images per pipeline call.
    """
    pairs = test_pairs(n_lookalike, n_mixed, seed)
    prompts = [caption(p) for p, _, _ in pairs]
    seeds = [s for _, s, _ in pairs]
    kinds = [k for _, _, k in pairs]
    ents = [p for p, _, _ in pairs]
    result: dict = {"steps": steps, "n_images": len(pairs)}
    vanilla, _ = generate(pipe, prompts, seeds, steps=steps, batch=batch)
    v_read = [read_image(im, p) for im, p in zip(vanilla, ents)]
    result["vanilla"] = _summarise_leak(v_read, kinds)
    if n_single:
        nouns = list(ENTITY_TYPES)
        singles = [(nouns[i % len(nouns)],) for i in range(n_single)]
        images, _ = generate(
            pipe,
            [caption(s) for s in singles],
            [seed + 20_000 + i for i in range(n_single)],
            steps=steps,
            batch=batch,
        )
        reads = [read_image(im, s) for im, s in zip(images, singles)]
        result["vanilla_single"] = _summarise_leak(reads, ["single"] * n_single)["single"]
    if masks:
        off = {
            "image_text_suppression": False,
            "self_identity": False,
            "image_image_suppression": False,
        }
        same, m_off = generate(
            pipe, prompts, seeds, steps=steps, batch=batch, entities=ents, deleaker_options=off
        )
        # the mask path computes attention explicitly, so pixels may differ by rounding
        result["masks_without_edits_max_pixel_difference"] = int(
            max(
                np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).max()
                for a, b in zip(same, vanilla)
            )
        )
        s_read = [read_image(im, p) for im, p in zip(same, ents)]
        # diagnostic: the same masks before DeLeaker's 3x3 open/close smoothing
        raw_opts = {**off, "smoothing": False}
        _, m_raw = generate(
            pipe, prompts, seeds, steps=steps, batch=batch, entities=ents, deleaker_options=raw_opts
        )
        dl, m_on = generate(pipe, prompts, seeds, steps=steps, batch=batch, entities=ents)
        d_read = [read_image(im, p) for im, p in zip(dl, ents)]
        result["deleaker"] = _summarise_leak(d_read, kinds)
        # the full method without its spatial smoothing (which can erase masks on a small grid)
        dr, m_dr = generate(
            pipe,
            prompts,
            seeds,
            steps=steps,
            batch=batch,
            entities=ents,
            deleaker_options={"smoothing": False},
        )
        dr_read = [read_image(im, p) for im, p in zip(dr, ents)]
        result["deleaker_no_smoothing"] = _summarise_leak(dr_read, kinds)
        for name, reads, ms in (
            ("masks_vanilla", s_read, m_off),
            ("masks_vanilla_unsmoothed", s_read, m_raw),
            ("masks_deleaker", d_read, m_on),
            ("masks_deleaker_no_smoothing", dr_read, m_dr),
        ):
            result[name] = {}
            for kind in sorted(set(kinds)):
                rows = [
                    row
                    for rd, m, p, k in zip(reads, ms, ents, kinds)
                    if k == kind
                    for row in _localisation(rd, m, p)
                ]
                result[name][kind] = _summarise_loc(rows)
    return result


def inject(
    noun: str,
    donor: str,
    strength: float,
    mask: np.ndarray,
    rng: np.random.Generator,
    *,
    blend: bool = False,
) -> np.ndarray:
    """A texture for ``noun`` where a share ``strength`` of its cells carries ``donor``'s pattern.

    Whole 4x4 cells (one pattern period) are repainted, chosen as a contiguous band from a random
    side, so the transfer is a patch of the other pattern as leakage looks in images. With
    ``blend`` the chosen cells show both patterns at once (their union; stripes and bars make a
    grid): a compromise between the two patterns rather than a copy of the donor's.
    """
    size = mask.shape[0]
    own = pattern_texture(entity_type(noun).pattern, size)
    other = pattern_texture(entity_type(donor).pattern, size)
    cy, cx = np.mgrid[0:size, 0:size] // PERIOD
    cells = sorted({(int(a), int(b)) for a, b in zip(cy[mask], cx[mask])})
    if not cells or strength <= 0:
        return own
    direction = rng.normal(size=2)
    cells.sort(key=lambda c: c[0] * direction[0] + c[1] * direction[1])
    chosen = cells[: int(round(strength * len(cells)))]
    out = own.copy()
    painted = (own | other) if blend else other
    for a, b in chosen:
        sl = (slice(a * PERIOD, (a + 1) * PERIOD), slice(b * PERIOD, (b + 1) * PERIOD))
        out[sl] = painted[sl]
    return out


def measure_oracle(
    strengths: Sequence[float] = (0.0, 0.1, 0.25, 0.4, 0.6, 1.0),
    n: int = 240,
    seed: int = 7,
    blur: float = 0.0,
    blend: bool = False,
) -> dict:
    """The oracle's detection rate per injected strength (0 gives the false-alarm rate).

    Args:
        strengths: Shares of the receiving entity's cells repainted with the donor's pattern.
        n: Look-alike pair renders per strength (the first entity receives the transfer).
        seed: Seed of placements and transfer direction.
        blur: Standard deviation (pixels) of a Gaussian blur applied to the renders, to mimic
            the softness of generated images (0: none).
        blend: Inject the union of both patterns instead of the donor's alone (see
            :func:`inject`).
    """
    rng = np.random.default_rng(seed)
    la = lookalike_pairs()
    out = {"n_per_strength": n, "blur": blur, "blend": blend, "by_strength": {}}
    for s in strengths:
        hit, clean_other, ctrl, found = [], [], [], []
        for i in range(n):
            a, b = la[i % len(la)]
            pl = place((a, b), rng)
            base = render(pl)
            tex = inject(a, b, s, base.masks[0], rng, blend=blend)
            r = render(pl, patterns=[tex, entity_type(b).pattern])
            img = _blur(r.image, blur) if blur > 0 else r.image
            rd = read_image(img, (a, b))
            found.append(rd[0].found and rd[1].found)
            hit.append(rd[0].leaks)
            clean_other.append(rd[1].leaks)
            ctrl.append(rd[0].control_fires or rd[1].control_fires)
        out["by_strength"][str(s)] = {
            "receiver_flagged": rate(hit),
            "donor_flagged": rate(clean_other),
            "control_fired": rate(ctrl),
            "both_found": rate(found),
        }
    return out


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    from PIL import Image, ImageFilter

    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(sigma)))


def measure_block_masks(
    pipe,
    *,
    n_lookalike: int = 96,
    n_mixed: int = 0,
    steps: int = 20,
    seed: int = 1234,
    batch: int = 16,
) -> dict:
    """Where each block's own attention puts each entity, per block type and per step.

    DeLeaker is installed with its edits off (the images are the vanilla images) and
    ``use_history=false`` from the first block on, so every block's mask is thresholded from
    that block's own image->entity attention (``mean + beta1 * std``, no smoothing). A second
    pass with the default options gives, per step, the history masks DeLeaker itself would use
    (edits off). Regions are the oracle's segmentation of the generated image.

    Args:
        pipe: The toy ``FluxPipeline``.
        n_lookalike: Look-alike pair images (as :func:`measure_generation`).
        n_mixed: Mixed-family pair images.
        steps: Denoising steps.
        seed: Seed of the pair list and image seeds.
        batch: Images per pipeline call.

    Returns:
        ``{"per_block": {kind: {"double"|"single": {step: summary}}}, "history": {kind:
        {step: summary}}, "blocks": {"double": n, "single": n}}``, each summary as
        :func:`_summarise_loc` gives it.
    """
    transformer = pipe.transformer
    n_double = len(transformer.transformer_blocks)
    n_single = len(transformer.single_transformer_blocks)
    pairs = test_pairs(n_lookalike, n_mixed, seed)
    off = {
        "image_text_suppression": False,
        "self_identity": False,
        "image_image_suppression": False,
    }
    per_block_opts = {**off, "use_history": False, "smoothing": False, "edit_start": (0.0, 0.0)}
    history_opts = {**off, "edit_start": (0.0, 0.0)}
    rows_block: dict = {}
    rows_hist: dict = {}
    for start in range(0, len(pairs), batch):
        chunk = pairs[start : start + batch]
        ents = [list(p) for p, _, _ in chunk]
        seen: dict = {}

        def observe(b, entity, step, offset, mask, seen=seen):
            seen[(b, entity, step, offset)] = np.asarray(mask.cpu(), dtype=bool)

        images, _ = _generate_observed(pipe, chunk, ents, steps, per_block_opts, observe)
        _, hist = _generate_observed(pipe, chunk, ents, steps, history_opts, None)
        for b, ((pair, _, kind), image) in enumerate(zip(chunk, images)):
            readings = read_image(image, pair)
            for (bb, entity, step, offset), mask in seen.items():
                if bb != b:
                    continue
                block = "double" if offset < n_double else "single"
                for row in _localisation(readings, {entity: mask}, pair):
                    rows_block.setdefault(kind, {}).setdefault(block, {}).setdefault(
                        step, []
                    ).append(row)
            for step in range(steps):
                masks = {e: m[step] for e, m in hist[b].items() if step in m}
                for row in _localisation(readings, masks, pair):
                    rows_hist.setdefault(kind, {}).setdefault(step, []).append(row)
    return {
        "blocks": {"double": n_double, "single": n_single},
        "per_block": {
            kind: {
                block: {str(s): _summarise_loc(rows) for s, rows in sorted(by_step.items())}
                for block, by_step in by_block.items()
            }
            for kind, by_block in rows_block.items()
        },
        "history": {
            kind: {str(s): _summarise_loc(rows) for s, rows in sorted(by_step.items())}
            for kind, by_step in rows_hist.items()
        },
    }


def _generate_observed(pipe, chunk, ents, steps, options, observer):
    """Generate ``chunk`` under DeLeaker with ``options``; returns images and per-step masks."""
    import torch

    from ...methods.deleaker import deleaker

    with deleaker(pipe, entities=ents, **options) as run:
        run.observer = observer
        images = pipe(
            prompt=[caption(p) for p, _, _ in chunk],
            height=IMAGE_SIZE,
            width=IMAGE_SIZE,
            num_inference_steps=steps,
            max_sequence_length=TEXT_LEN,
            generator=[torch.Generator().manual_seed(int(s)) for _, s, _ in chunk],
        ).images
    masks = [
        {
            e: {s: np.asarray(m, dtype=bool) for s, m in by_step.items()}
            for e, by_step in item.items()
        }
        for item in run.batch_masks
    ]
    return images, masks


def run_leakage(run_dir, role: str = "method") -> dict:
    """The oracle's leakage rate over a finished run's images of ``role``, per sample kind.

    Args:
        run_dir: A run directory (``slim-eval run`` or one variant of a sweep).
        role: ``method`` or ``vanilla``.

    Returns:
        ``{kind: summary}`` as :func:`measure_generation` reports leakage (Wilson intervals).
    """
    from ...rundir import load_run

    run = load_run(run_dir)
    readings, kinds = [], []
    from PIL import Image

    for sample in run.samples:
        with Image.open(run.image_path(sample.id, role)) as image:
            readings.append(read_image(image.convert("RGB"), list(sample.entities)))
        kinds.append(sample.kind or "sample")
    return _summarise_leak(readings, kinds)

"""Exact measurements on toy images: find each entity, read its pattern, score leakage.

Pure numpy, used by the ``oracle`` judge backend and by the toy measurements. The rules are
fixed in advance and never fitted to a model's outputs:

1. **Segment.** Foreground pixels are those brighter than :data:`FOREGROUND` in their brightest
   channel (the background is black). Connected components (4-neighbour) smaller than
   :data:`MIN_AREA` pixels are noise.
2. **Colour.** A component's colour is the median of its non-white pixels; it belongs to the
   family whose colour is nearest.
3. **Assign.** Each entity of the caption takes one component of its family's colour; when
   several entities share a family (look-alikes), the assignment that makes the entities look
   most like themselves is chosen (the oracle, like any judge, cannot know which blob was meant
   to be which, so it gives the image the benefit of the doubt).
4. **Pattern.** Whiteness (low saturation, high brightness) is compared, cell by cell
   (4x4 pixels, one pattern period), with each pattern's texture at its best phase. A cell
   votes for the pattern it matches best; an entity's *own* share, *other* share (the other
   entities' patterns) and *control* share (a pattern no entity in the caption has) are the
   fractions of its cells voting for each.
5. **Score.** Typicality = own share - other share (in [-1, 1]); a missing entity scores -1.
   An entity *leaks* when its other share reaches :data:`LEAK_SHARE`; the control fires when
   its control share does.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

import numpy as np

from .world import FAMILIES, PATTERNS, PERIOD, entity_type, pattern_texture

#: Brightest-channel level (0-1) above which a pixel belongs to an entity.
FOREGROUND = 0.3
#: Smallest component (pixels) taken as an entity (32 of a 64x64 image: under 1% of it).
MIN_AREA = 32
#: Share of an entity's cells showing another entity's pattern that counts as leakage.
LEAK_SHARE = 1 / 3
#: Fewest entity pixels in a 4x4 cell for the cell to vote.
CELL_MIN_PIXELS = 12
#: A cell votes only when its best pattern beats the runner-up by this mean whiteness error.
VOTE_MARGIN = 0.05


def to_float(image) -> np.ndarray:
    """A PIL image or uint8 array -> float ``(H, W, 3)`` in [0, 1]."""
    arr = np.asarray(image.convert("RGB") if hasattr(image, "convert") else image)
    if arr.dtype == np.uint8:
        return arr.astype(np.float32) / 255.0
    return arr.astype(np.float32)


#: Most pixels an image the oracle reads may have (toy images are 64 x 64); checked from the
#: image header before any pixel is decoded, so a small file declaring a huge image (a
#: decompression bomb) costs nothing.
MAX_PIXELS = 1024 * 1024
#: Most components :func:`components` returns (largest first); a toy image holds a handful.
MAX_COMPONENTS = 64


def check_size(image) -> None:
    """Refuse an image above :data:`MAX_PIXELS` before decoding it (PIL reads the header only).

    Raises:
        ValueError: Naming the image's size and the limit.
    """
    size = getattr(image, "size", None)
    if isinstance(size, tuple):
        w, h = size
    else:
        h, w = np.shape(image)[:2]
    if w * h > MAX_PIXELS:
        raise ValueError(
            f"image of {w} x {h} pixels is above the oracle's limit of {MAX_PIXELS:,} pixels"
        )


def component_labels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Label the 4-connected components of a boolean mask, vectorised.

    Union-find over the pixel grid's edges in whole-array steps: every root hooks onto the
    smallest root among its neighbours' roots, then pointer jumping flattens the trees; this
    repeats until no edge joins two roots. Memory is a few integer arrays of the mask's size
    (no per-component mask is built here).

    Returns:
        ``(labels, sizes)``: ``labels`` (H, W) with 0 for background and ``1..K`` per
        component; ``sizes[k]`` the pixel count of component ``k`` (``sizes[0]`` = 0).
    """
    h, w = mask.shape
    flat = mask.ravel()
    idx = np.arange(h * w, dtype=np.int64).reshape(h, w)
    right = mask[:, :-1] & mask[:, 1:]
    down = mask[:-1, :] & mask[1:, :]
    a = np.concatenate([idx[:, :-1][right], idx[:-1, :][down]])
    b = np.concatenate([idx[:, 1:][right], idx[1:, :][down]])
    parent = np.arange(h * w, dtype=np.int64)
    while a.size:
        ra, rb = parent[a], parent[b]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        join = lo != hi
        if not join.any():
            break
        np.minimum.at(parent, hi[join], lo[join])
        while True:  # pointer jumping: every pixel points at its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
        a, b = a[join], b[join]
    roots = np.where(flat, parent, -1)
    uniq, inverse = np.unique(roots[flat], return_inverse=True)
    labels = np.zeros(h * w, dtype=np.int32)
    labels[flat] = inverse.astype(np.int32) + 1
    sizes = np.bincount(labels, minlength=len(uniq) + 1)
    sizes[0] = 0
    return labels.reshape(h, w), sizes


def components(
    mask: np.ndarray, *, min_area: int = 1, max_count: int = MAX_COMPONENTS
) -> list[np.ndarray]:
    """4-connected components of a boolean mask, largest first (each a boolean mask).

    Only components of at least ``min_area`` pixels are returned, at most ``max_count`` of
    them, so the memory is bounded by ``max_count`` masks whatever the image holds (a
    checkerboard has one component per pixel). Ties in size keep the order of first pixel.
    """
    labels, sizes = component_labels(np.asarray(mask, dtype=bool))
    keep = [int(k) for k in np.nonzero(sizes >= max(1, min_area))[0]]
    keep.sort(key=lambda k: -int(sizes[k]))  # stable: equal sizes keep raster order
    return [labels == k for k in keep[:max_count]]


def whiteness(img: np.ndarray) -> np.ndarray:
    """Per-pixel whiteness in [0, 1]: how close the darkest channel is to white."""
    return np.clip((img.min(axis=2) - 0.35) / 0.45, 0.0, 1.0)


def nearest_family(img: np.ndarray, region: np.ndarray) -> tuple[str, float]:
    """The family whose colour is nearest the region's median non-white colour, and the distance."""
    pix = img[region]
    base = pix[whiteness(img)[region] < 0.5]
    if len(base) == 0:
        base = pix
    colour = np.median(base, axis=0)
    best, dist = "", np.inf
    for fam in FAMILIES:
        d = float(np.linalg.norm(colour - np.asarray(fam.colour) / 255.0))
        if d < dist:
            best, dist = fam.name, d
    return best, dist


def pattern_shares(img: np.ndarray, region: np.ndarray) -> dict[str, float]:
    """Fraction of the region's 4x4 cells best matched by each pattern (see module rule 4)."""
    h, w = region.shape
    white = whiteness(img)
    textures = {}
    for p in PATTERNS:
        best, best_err = None, np.inf
        for dy in range(PERIOD):
            for dx in range(PERIOD):
                tex = pattern_texture(p, h, (dy, dx)).astype(np.float32)
                err = float(np.abs(white - tex)[region].mean()) if region.any() else 0.0
                if err < best_err:
                    best, best_err = tex, err
        textures[p] = best
    votes = dict.fromkeys(PATTERNS, 0)
    cells = 0
    for y in range(0, h - PERIOD + 1, PERIOD):
        for x in range(0, w - PERIOD + 1, PERIOD):
            cell = region[y : y + PERIOD, x : x + PERIOD]
            if cell.sum() < CELL_MIN_PIXELS:
                continue
            cw = white[y : y + PERIOD, x : x + PERIOD][cell]
            errs = {
                p: float(np.abs(cw - textures[p][y : y + PERIOD, x : x + PERIOD][cell]).mean())
                for p in PATTERNS
            }
            ranked = sorted(errs, key=errs.get)
            if errs[ranked[1]] - errs[ranked[0]] < VOTE_MARGIN:
                continue  # ambiguous cell (an edge, or blur): it does not vote
            votes[ranked[0]] += 1
            cells += 1
    if cells == 0:
        return dict.fromkeys(PATTERNS, 0.0)
    return {p: v / cells for p, v in votes.items()}


@dataclasses.dataclass(frozen=True)
class EntityReading:
    """What the oracle reads for one entity of the caption.

    Attributes:
        noun: The entity.
        found: Whether a component was assigned to it.
        area: Its component's pixels (0 when not found).
        own: Share of its cells showing its own pattern.
        other: Share showing another caption entity's (different) pattern.
        control: Share showing a pattern no caption entity has.
        typicality: ``own - other`` in [-1, 1]; -1 when not found.
        leaks: ``other >= LEAK_SHARE``.
        control_fires: ``control >= LEAK_SHARE``.
        mask: Its component (``None`` when not found).
    """

    noun: str
    found: bool
    area: int
    own: float
    other: float
    control: float
    typicality: float
    leaks: bool
    control_fires: bool
    mask: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-compatible figures (the mask is left out)."""
        d = dataclasses.asdict(self)
        d.pop("mask")
        return d


def _reading(noun: str, shares: dict, nouns: Sequence[str], region: np.ndarray) -> EntityReading:
    own_p = entity_type(noun).pattern
    others = {entity_type(n).pattern for n in nouns if n != noun} - {own_p}
    controls = set(PATTERNS) - others - {own_p}
    own = shares[own_p]
    other = sum(shares[p] for p in others)
    control = sum(shares[p] for p in controls)
    return EntityReading(
        noun=noun,
        found=True,
        area=int(region.sum()),
        own=own,
        other=other,
        control=control,
        typicality=own - other,
        leaks=other >= LEAK_SHARE,
        control_fires=control >= LEAK_SHARE,
        mask=region,
    )


def _missing(noun: str) -> EntityReading:
    return EntityReading(noun, False, 0, 0.0, 0.0, 0.0, -1.0, False, False, None)


def read_image(image, nouns: Sequence[str]) -> list[EntityReading]:
    """Segment ``image`` and read every entity of the caption (in caption order).

    Args:
        image: A PIL image or an ``(H, W, 3)`` array.
        nouns: The caption's entities (toy nouns).
    """
    for n in nouns:
        entity_type(n)
    check_size(image)
    img = to_float(image)
    comps = components(img.max(axis=2) > FOREGROUND, min_area=MIN_AREA)
    by_family: dict[str, list[np.ndarray]] = {}
    for c in comps:
        fam, _ = nearest_family(img, c)
        by_family.setdefault(fam, []).append(c)
    readings: dict[int, EntityReading] = {}
    for fam, idx in _group(nouns).items():
        cands = by_family.get(fam, [])[: max(len(idx), 0) + 2]
        shares = [pattern_shares(img, c) for c in cands]
        best_perm, best_score = None, -np.inf
        k = min(len(idx), len(cands))
        # choose which entities get a component and which component each gets
        for ents in itertools.combinations(idx, k):
            for comp in itertools.permutations(range(len(cands)), k):
                score = sum(
                    _reading(nouns[e], shares[c], nouns, cands[c]).typicality
                    for e, c in zip(ents, comp)
                )
                # prefer larger components on ties (a real entity over a fragment)
                score += 1e-6 * sum(int(cands[c].sum()) for c in comp)
                if score > best_score:
                    best_perm, best_score = list(zip(ents, comp)), score
        for e, c in best_perm or []:
            readings[e] = _reading(nouns[e], shares[c], nouns, cands[c])
    return [readings.get(i, _missing(n)) for i, n in enumerate(nouns)]


def _group(nouns: Sequence[str]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for i, n in enumerate(nouns):
        out.setdefault(entity_type(n).family, []).append(i)
    return out

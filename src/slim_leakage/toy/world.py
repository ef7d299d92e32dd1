"""The toy world: entity types, look-alike families, scenes, captions and a procedural renderer.

Every entity type is named by one noun and drawn as a shape in its family's colour, covered by
its own white pattern. A family is a set of look-alikes: same shape, same colour, different
pattern (``tiger`` striped, ``leopard`` diagonal, ``lynx`` barred), just as SLIM pairs
look-alike animals. A render returns the image and the ground truth of every entity (its mask
and attributes), so leakage can be measured exactly.

Only numpy is needed here; the module is safe to import without torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from ..errors import ConfigError

#: Image side in pixels of every toy render (and of the toy model's output). With the toy
#: model's 4x4-pixel tokens this is a 16x16 token grid, each token one whole pattern period.
IMAGE_SIZE = 64
#: Period of every pattern in pixels (a 2-pixel white band, then 2 pixels of colour).
PERIOD = 4
#: The patterns, each a white texture on the entity's colour.
PATTERNS: tuple[str, ...] = ("striped", "diagonal", "barred")
#: The shapes a family can have.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond")


@dataclasses.dataclass(frozen=True)
class Family:
    """A group of look-alike entity types (same shape and colour, different patterns).

    Attributes:
        name: Family name (``felines``).
        shape: One of :data:`SHAPES`.
        colour: RGB base colour, 0-255.
        members: ``(noun, pattern)`` pairs, one per entity type.
    """

    name: str
    shape: str
    colour: tuple[int, int, int]
    members: tuple[tuple[str, str], ...]


@dataclasses.dataclass(frozen=True)
class EntityType:
    """One nameable kind of entity.

    Attributes:
        noun: Its name in captions (one word).
        family: The look-alike family it belongs to.
        shape: Shape drawn.
        colour: RGB base colour.
        pattern: White pattern drawn over the colour.
    """

    noun: str
    family: str
    shape: str
    colour: tuple[int, int, int]
    pattern: str


FAMILIES: tuple[Family, ...] = (
    Family(
        "felines",
        "circle",
        (225, 120, 20),
        (("tiger", "striped"), ("leopard", "diagonal"), ("lynx", "barred")),
    ),
    Family(
        "equines",
        "square",
        (150, 80, 30),
        (("zebra", "striped"), ("pony", "diagonal"), ("okapi", "barred")),
    ),
    Family(
        "fish",
        "triangle",
        (30, 80, 210),
        (("perch", "striped"), ("trout", "diagonal"), ("bass", "barred")),
    ),
    Family(
        "gourds",
        "diamond",
        (30, 150, 50),
        (("melon", "striped"), ("gourd", "diagonal"), ("squash", "barred")),
    ),
)

ENTITY_TYPES: dict[str, EntityType] = {
    noun: EntityType(noun, fam.name, fam.shape, fam.colour, pattern)
    for fam in FAMILIES
    for noun, pattern in fam.members
}
#: Every word a toy caption can contain (nouns, articles, connectives).
VOCABULARY: tuple[str, ...] = ("a", "an", "and", *ENTITY_TYPES)  # capitalised forms are added too


def entity_type(noun: str) -> EntityType:
    """Look up an entity type by noun, with a clear error naming the known ones."""
    try:
        return ENTITY_TYPES[noun]
    except KeyError:
        raise ConfigError(
            f"Unknown toy entity {noun!r}.",
            hint=f"Use one of: {', '.join(ENTITY_TYPES)}.",
        ) from None


def article(noun: str) -> str:
    """``an`` before a vowel, else ``a``."""
    return "an" if noun[0] in "aeiou" else "a"


def caption(nouns: Sequence[str]) -> str:
    """A scene's caption: ``A tiger``, ``A tiger and a perch``, ``A tiger, a perch and a melon``.

    The first letter is capitalised, as the SLIM builder writes prompts, so the toy SLIM configs
    use exactly the captions the model was trained on.
    """
    if not nouns:
        raise ConfigError("A toy caption needs at least one entity.")
    for n in nouns:
        entity_type(n)
    parts = [f"{article(n)} {n}" for n in nouns]
    text = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return text[:1].upper() + text[1:]


@dataclasses.dataclass(frozen=True)
class Placement:
    """Where one entity sits: centre (x, y) and radius in pixels."""

    noun: str
    cx: float
    cy: float
    radius: float


@dataclasses.dataclass
class Render:
    """A rendered scene with its ground truth.

    Attributes:
        image: ``uint8`` array ``(H, W, 3)``.
        nouns: The entities in caption order.
        masks: ``bool`` array ``(n, H, W)``: each entity's pixels (pattern included).
        placements: Each entity's centre and radius.
        caption: The scene's caption.
    """

    image: np.ndarray
    nouns: tuple[str, ...]
    masks: np.ndarray
    placements: tuple[Placement, ...]
    caption: str


def shape_mask(
    shape: str, cx: float, cy: float, radius: float, size: int = IMAGE_SIZE
) -> np.ndarray:
    """Boolean ``(size, size)`` mask of a shape of ``radius`` centred at ``(cx, cy)``."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    dx, dy = x - cx, y - cy
    if shape == "circle":
        return dx * dx + dy * dy <= radius * radius
    if shape == "square":
        half = radius * 0.72  # corners stay inside the bounding circle
        return (np.abs(dx) <= half) & (np.abs(dy) <= half)
    if shape == "diamond":
        return np.abs(dx) + np.abs(dy) <= radius
    if shape == "triangle":
        # apex up at cy - r; base at cy + 0.6 r, half-width 0.8 r: inside the bounding circle
        top, bottom = cy - radius, cy + 0.6 * radius
        frac = (y - top) / (bottom - top)
        return (y >= top) & (y <= bottom) & (np.abs(dx) <= frac * radius * 0.8)
    raise ConfigError(f"Unknown shape {shape!r}.", hint=f"Use one of: {', '.join(SHAPES)}.")


def pattern_texture(
    pattern: str, size: int = IMAGE_SIZE, phase: tuple[int, int] = (0, 0)
) -> np.ndarray:
    """Boolean ``(size, size)`` texture that is True where a pattern is white.

    Args:
        pattern: One of :data:`PATTERNS`.
        size: Image side.
        phase: ``(dy, dx)`` shift of the texture in pixels.
    """
    y, x = np.mgrid[0:size, 0:size]
    ry = (y + phase[0]) % PERIOD < PERIOD // 2
    rx = (x + phase[1]) % PERIOD < PERIOD // 2
    if pattern == "striped":
        return ry
    if pattern == "barred":
        return rx
    if pattern == "diagonal":
        # Bands along the anti-diagonal. Not a combination of stripes and bars (as dots at their
        # crossings would be), so a compromise between two named patterns cannot look like a third.
        return (y + x + phase[0] + phase[1]) % PERIOD < PERIOD // 2
    raise ConfigError(f"Unknown pattern {pattern!r}.", hint=f"Use one of: {', '.join(PATTERNS)}.")


WHITE = np.array([245, 245, 245], dtype=np.uint8)


def render(
    placements: Sequence[Placement],
    *,
    size: int = IMAGE_SIZE,
    patterns: Sequence[str | np.ndarray] | None = None,
) -> Render:
    """Draw entities on a black background.

    Args:
        placements: One per entity, in caption order; later ones are drawn on top.
        size: Image side in pixels.
        patterns: Optional per-entity override: a pattern name, or a boolean ``(size, size)``
            texture (how pattern transfer of known strength is injected).
    """
    image = np.zeros((size, size, 3), dtype=np.uint8)
    masks = np.zeros((len(placements), size, size), dtype=bool)
    for i, p in enumerate(placements):
        et = entity_type(p.noun)
        m = shape_mask(et.shape, p.cx, p.cy, p.radius, size)
        tex = patterns[i] if patterns is not None else et.pattern
        if isinstance(tex, str):
            tex = pattern_texture(tex, size)
        image[m] = np.array(et.colour, dtype=np.uint8)
        image[m & tex] = WHITE
        masks[:i][:, m] = False  # a later entity hides an earlier one
        masks[i] = m
    nouns = tuple(p.noun for p in placements)
    return Render(image, nouns, masks, tuple(placements), caption(nouns))


def place(
    nouns: Sequence[str],
    rng: np.random.Generator,
    *,
    size: int = IMAGE_SIZE,
    radius: tuple[float, float] | None = None,
    gap: float | None = None,
    tries: int = 200,
) -> tuple[Placement, ...]:
    """Random non-overlapping placements (positions are independent of caption order).

    Args:
        nouns: Entities to place.
        rng: Random generator.
        size: Image side.
        radius: ``(low, high)`` radius range; defaults shrink with the entity count and scale
            with ``size`` (at 64 pixels: 14-21 for one entity, 13-19 for two, 12-15 for three).
        gap: Minimum free pixels between two entities' bounding circles (default 3 at 64 pixels,
            scaled with ``size``).
        tries: Rejection-sampling attempts before the radius range is shrunk.
    """
    n = len(nouns)
    scale = size / 64
    if radius is None:
        lo, hi = {1: (14.0, 21.0), 2: (13.0, 19.0)}.get(n, (12.0, 15.0))
        radius = (lo * scale, hi * scale)
    if gap is None:
        gap = 3.0 * scale
    lo, hi = radius
    for _ in range(6):
        for _ in range(tries):
            r = rng.uniform(lo, hi, size=n)
            c = np.stack(
                [rng.uniform(r + 0.5, size - r - 0.5), rng.uniform(r + 0.5, size - r - 0.5)], axis=1
            )
            ok = True
            for i in range(n):
                for j in range(i):
                    if np.hypot(*(c[i] - c[j])) < r[i] + r[j] + gap:
                        ok = False
                        break
                if not ok:
                    break
            if ok:
                return tuple(
                    Placement(noun, float(c[i, 0]), float(c[i, 1]), float(r[i]))
                    for i, noun in enumerate(nouns)
                )
        lo, hi = lo * 0.9, hi * 0.9
    raise ConfigError(f"Could not place {n} entities in a {size}x{size} image.")


@dataclasses.dataclass(frozen=True)
class SceneMix:
    """How training scenes are drawn.

    Attributes:
        single: Share of one-entity scenes.
        pair_mixed: Share of two entities from different families.
        pair_lookalike: Share of two look-alikes (same family); kept rare so the model seldom
            learns to keep look-alikes apart, which is what makes leakage likely.
        triplet: Share of three entities (from three different families).
    """

    single: float = 0.40
    pair_mixed: float = 0.475
    pair_lookalike: float = 0.005
    triplet: float = 0.12

    def __post_init__(self) -> None:
        shares = (self.single, self.pair_mixed, self.pair_lookalike, self.triplet)
        if any(s < 0 for s in shares) or abs(sum(shares) - 1.0) > 1e-6:
            raise ConfigError(
                f"SceneMix shares {shares} must be non-negative and sum to 1.",
                hint="Adjust single, pair_mixed, pair_lookalike and triplet.",
            )


def sample_nouns(rng: np.random.Generator, mix: SceneMix = SceneMix()) -> tuple[str, ...]:
    """Draw the entities of one training scene according to ``mix``."""
    kinds = ("single", "pair_mixed", "pair_lookalike", "triplet")
    kind = kinds[rng.choice(4, p=[mix.single, mix.pair_mixed, mix.pair_lookalike, mix.triplet])]
    fams = list(FAMILIES)
    if kind == "single":
        f = fams[rng.integers(len(fams))]
        return (f.members[rng.integers(len(f.members))][0],)
    if kind == "pair_lookalike":
        f = fams[rng.integers(len(fams))]
        idx = rng.choice(len(f.members), size=2, replace=False)
        return tuple(f.members[i][0] for i in idx)
    k = 2 if kind == "pair_mixed" else 3
    fidx = rng.choice(len(fams), size=k, replace=False)
    return tuple(fams[i].members[rng.integers(len(fams[i].members))][0] for i in fidx)


def sample_scene(
    rng: np.random.Generator, mix: SceneMix = SceneMix(), size: int = IMAGE_SIZE
) -> Render:
    """Draw and render one random training scene."""
    nouns = sample_nouns(rng, mix)
    return render(place(nouns, rng, size=size), size=size)


def lookalike_pairs() -> list[tuple[str, str]]:
    """Every ordered pair of distinct look-alikes (same family), family by family."""
    out = []
    for fam in FAMILIES:
        nouns = [n for n, _ in fam.members]
        out.extend((a, b) for a in nouns for b in nouns if a != b)
    return out

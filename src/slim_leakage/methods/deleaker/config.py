"""DeLeaker's options: every knob of the method, validated, each component switchable.

Windows are given as positions in the run, ``(step_fraction, block_fraction)``: the boundary
block-step is ``round(step_fraction * steps) * blocks + round(block_fraction * blocks)`` where
``steps`` is the number of denoising steps and ``blocks`` the attention calls per step, both read
at run time. On FLUX.1-dev (57 blocks) at 20 steps the defaults land exactly on the published
windows: history over block-steps [12, 684), editing over [18, 1140).
"""

from __future__ import annotations

import dataclasses
import math

from ..._config import check_range
from ...errors import ConfigError

#: Which blocks may feed the mask history (``mask_blocks``).
MASK_BLOCKS = ("all", "double", "single")

#: FLUX.1-dev runs 19 double + 38 single attention calls per denoising step.
_FLUX_DEV_BLOCKS = 57


def _round_half_up(x: float) -> int:
    # Python's round() is banker's rounding; window boundaries must not depend on parity.
    return int(math.floor(x + 0.5 + 1e-9))


@dataclasses.dataclass(frozen=True)
class DeLeakerConfig:
    """Options of DeLeaker (paper §2, official behaviour §3 of the method specification).

    Attributes:
        beta1: Mask threshold ``mean + beta1 * std`` over the head- and sub-token-averaged
            image->entity-text attention (paper §3.1 "entity mask", β₁).
        beta2: Threshold ``mean + beta2 * std`` for abnormal cross-entity image->image links,
            per block and per direction (paper §3.2, β₂).
        alpha: Factor on the pre-softmax logits of an entity's image tokens attending to its own
            text tokens (paper §3.3 "self-identity", α). Applied once per pair the entity is in,
            so it compounds as ``alpha ** (n_entities - 1)``.
        image_text_suppression: Block image->text attention across entities (paper §3.2, "(−)
            image-text").
        self_identity: Multiply own image->text logits by ``alpha`` (paper §3.3, "(+)
            image-text").
        image_image_suppression: Block abnormally high cross-entity image->image attention
            (paper §3.2, "(−) image-image").
        text_text_suppression: Block the first token of each entity attending to the first token
            of the other (ablation only, off in the paper's main results; paper ablation table).
        use_history: Build masks from the running mean of early attention maps rather than the
            current block (paper §3.1, temporal smoothing).
        smoothing: Clean masks with a 3x3 morphological open then close (paper §3.1, spatial
            smoothing).
        open_iterations: Erode/dilate iterations of the opening (official code: 1).
        close_iterations: Dilate/erode iterations of the closing (official code: 2).
        history_start: Where the mask history starts accumulating, ``(step_fraction,
            block_fraction)``; default = block 12 of the first step on FLUX.1-dev.
        history_stop: Where the history freezes (exclusive); default = after 60% of the steps
            (steps 0-11 of 20).
        edit_start: Where the attention edits begin; default = block 18 of the first step (the
            last double block on FLUX.1-dev).
        edit_stop: Where the edits end (exclusive); default = the end of the run.
        mask_blocks: Which blocks feed the mask history: ``all`` (the paper), ``double`` (the
            double-stream blocks) or ``single`` (the single-stream blocks). FLUX only; until the
            history holds a map, a block reads its masks from its own attention.
        masks: Where the entity masks come from: ``attention`` (the paper's method), a folder
            of mask images, a registered mask source (the toy world's ``oracle``) or
            ``package.module:function`` (see :mod:`.given`). Read by the registered method; in
            diffusers code pass ``masks=`` to ``deleaker(...)`` instead.
    """

    beta1: float = 1.0
    beta2: float = 1.0
    alpha: float = 1.2
    image_text_suppression: bool = True
    self_identity: bool = True
    image_image_suppression: bool = True
    text_text_suppression: bool = False
    use_history: bool = True
    smoothing: bool = True
    open_iterations: int = 1
    close_iterations: int = 2
    history_start: tuple[float, float] = (0.0, 12 / _FLUX_DEV_BLOCKS)
    history_stop: tuple[float, float] = (0.6, 0.0)
    edit_start: tuple[float, float] = (0.0, 18 / _FLUX_DEV_BLOCKS)
    edit_stop: tuple[float, float] = (1.0, 0.0)
    mask_blocks: str = "all"
    masks: str = "attention"

    def __post_init__(self) -> None:
        owner = "DeLeakerConfig"
        for name in ("beta1", "beta2", "alpha"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"{owner}: {name}={value!r} is not a number.", hint=f"Give {name} as a float."
                )
            if not math.isfinite(value):
                raise ConfigError(
                    f"{owner}: {name}={value!r} is not finite.", hint=f"Give {name} a finite value."
                )
        check_range(owner, "alpha", self.alpha, low=0.0, low_open=True)
        for name in ("open_iterations", "close_iterations"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(
                    f"{owner}: {name}={value!r} is not an integer.",
                    hint=f"Give {name} as 0, 1, 2...",
                )
            check_range(owner, name, value, low=0)
        for name in (
            "image_text_suppression",
            "self_identity",
            "image_image_suppression",
            "text_text_suppression",
            "use_history",
            "smoothing",
        ):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(
                    f"{owner}: {name}={getattr(self, name)!r} is not a boolean.",
                    hint=f"Give {name} as true or false.",
                )
        if self.mask_blocks not in MASK_BLOCKS:
            raise ConfigError(
                f"{owner}: mask_blocks={self.mask_blocks!r} is not one of {', '.join(MASK_BLOCKS)}.",
                hint="Give mask_blocks=all (the paper's method), double or single.",
            )
        if not isinstance(self.masks, str) or not self.masks.strip():
            raise ConfigError(
                f"{owner}: masks={self.masks!r} is not a non-empty text.",
                hint="Give masks=attention (the default), a folder, or a mask source name.",
            )
        for name in ("history_start", "history_stop", "edit_start", "edit_stop"):
            value = getattr(self, name)
            ok = (
                isinstance(value, tuple)
                and len(value) == 2
                and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
            )
            if not ok:
                raise ConfigError(
                    f"{owner}: {name}={value!r} is not a (step_fraction, block_fraction) pair.",
                    hint=f"Give {name} as two numbers, e.g. {name}=0.6,0.0",
                )
            if not (0.0 <= value[0] <= 1.0 and 0.0 <= value[1] <= 1.0):
                raise ConfigError(
                    f"{owner}: {name}={value!r} has a fraction outside [0, 1].",
                    hint="Both the step fraction and the block fraction lie in [0, 1].",
                )

    @property
    def any_edit(self) -> bool:
        """Whether at least one attention edit is switched on."""
        return (
            self.image_text_suppression
            or self.self_identity
            or self.image_image_suppression
            or self.text_text_suppression
        )

    def windows(self, num_steps: int, blocks_per_step: int) -> tuple[int, int, int, int]:
        """The history and edit windows in block-steps for this geometry.

        Args:
            num_steps: Denoising steps of the run.
            blocks_per_step: Attention calls per transformer forward.

        Returns:
            ``(history_lo, history_hi, edit_lo, edit_hi)``, half-open ranges of global block-steps
            ``step * blocks_per_step + block``.
        """
        if num_steps < 1 or blocks_per_step < 1:
            raise ConfigError(
                f"DeLeaker needs at least one step and one block, got steps={num_steps}, "
                f"blocks={blocks_per_step}.",
                hint="Run the pipeline with num_inference_steps >= 1.",
            )

        def at(pos: tuple[float, float]) -> int:
            step = _round_half_up(pos[0] * num_steps)
            block = _round_half_up(pos[1] * blocks_per_step)
            return step * blocks_per_step + block

        return (
            at(self.history_start),
            at(self.history_stop),
            at(self.edit_start),
            at(self.edit_stop),
        )

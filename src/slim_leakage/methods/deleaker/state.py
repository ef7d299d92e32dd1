"""What every backbone file of DeLeaker shares: the per-generation state held by all installed
processors, the processors' common base, the config an installation runs with, and the
install/restore context manager. Backbone-agnostic: each backbone file fills in the geometry.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from ..._config import build_config
from ...errors import ConfigError, EntityNotFoundError
from .config import DeLeakerConfig
from .tokens import find_entity_spans


def normalise_entities(entities: Any) -> list[list[str]] | list[str]:
    """Check ``entities``: a list of strings (every prompt) or a list of such lists (per prompt)."""
    if isinstance(entities, str) or not isinstance(entities, Sequence) or not entities:
        raise ConfigError(
            f"entities={entities!r} is not a non-empty list.",
            hint='Pass entities=["cow", "horse"], or one such list per prompt.',
        )
    if all(isinstance(e, str) for e in entities):
        return list(entities)
    if all(not isinstance(e, str) and isinstance(e, Sequence) for e in entities):
        out = []
        for group in entities:
            if not group or not all(isinstance(e, str) for e in group):
                raise ConfigError(
                    f"entities entry {group!r} is not a non-empty list of strings.",
                    hint="Give one list of entity words per prompt.",
                )
            out.append(list(group))
        return out
    odd = next((e for e in entities if not isinstance(e, (str, Sequence))), None)
    if odd is not None:
        raise ConfigError(
            f"entities={entities!r} holds {odd!r} ({type(odd).__name__}); entities are words.",
            hint='Pass entities=["cow", "horse"] (strings), or one such list per prompt.',
        )
    raise ConfigError(
        f"entities={entities!r} mixes strings and lists.",
        hint="Use one list for all prompts or one list per prompt, not both.",
    )


class DeLeakerState:
    """What all processors of one installation share; one generation at a time.

    Attributes:
        config: The :class:`DeLeakerConfig`.
        blocks_per_step: Attention calls per transformer forward (from the model).
        spans: Per prompt, ``{entity: token positions}`` (set from the prompts).
        step: Denoising step of the current forward (from the timestep).
        num_steps: Denoising steps of the current generation.
        text_len: Text tokens in the joint sequence of the current forward.
        grid: ``(rows, cols)`` of the image-token grid of the current forward.
        active: Whether the current forward is edited (the conditional pass).
        forwards: Transformer forwards seen since installation.
    """

    def __init__(self, config: DeLeakerConfig, entities: Any, blocks_per_step: int) -> None:
        self.config = config
        self.entities = normalise_entities(entities)
        self.blocks_per_step = int(blocks_per_step)
        self.spans: list[dict[str, list[int]]] | None = None
        self.prompts: list[str] | None = None
        self.step = 0
        self.num_steps = 1
        self.text_len = 0
        self.grid: tuple[int, int] = (0, 0)
        self.batch = 0
        self.active = False
        self.windows = (0, 0, 0, 0)
        self._last_step: int | None = None
        self.forwards = 0
        #: Attention calls of the double-stream blocks at the start of each step (FLUX), for
        #: ``mask_blocks``; ``None`` where the backbone has no such split.
        self.double_blocks: int | None = None
        self.batch_spans: list[dict[str, list[int]]] = []
        #: Masks given from outside (:class:`.given.GivenMasks`), or ``None``: from attention.
        self.given = None
        #: ``observer(b, entity, step, block_offset, mask)``, called with every block's mask
        #: (measurements per block read them this way; ``None``: nobody watches).
        self.observer: Callable[[int, str, int, int | None, Any], None] | None = None
        self.reset()

    @property
    def batch_masks(self) -> list[dict[str, dict[int, Any]]]:
        """Every image's masks: ``[{entity: {step: (rows, cols) bool tensor on the CPU}}]``."""
        return [
            {e: {s: m.cpu() for s, m in steps.items()} for e, steps in item.items()}
            for item in self._masks
        ]

    @property
    def masks(self) -> dict[str, dict[int, Any]]:
        """The first image's masks: ``{entity: {step: (rows, cols) bool tensor}}``."""
        return self.batch_masks[0] if self._masks else {}

    # -- prompts -------------------------------------------------------------------------
    def entities_for(self, index: int) -> list[str]:
        """The entity list of prompt ``index``."""
        if self.entities and isinstance(self.entities[0], list):
            if index >= len(self.entities):
                raise ConfigError(
                    f"Got {len(self.entities)} entity lists for more prompts (prompt {index}).",
                    hint="Give one entity list per prompt, or one list for all.",
                )
            return self.entities[index]  # type: ignore[return-value]
        return self.entities  # type: ignore[return-value]

    def set_prompts(self, prompts: Sequence[str], tokenizer, max_sequence_length: int) -> None:
        """Resolve every prompt's entity token positions; errors name the sample's prompt."""
        self.resolve_prompts(
            prompts,
            lambda prompt, entities: find_entity_spans(
                tokenizer, prompt, entities, max_sequence_length=max_sequence_length
            ),
        )

    def resolve_prompts(self, prompts: Sequence[str], find_spans) -> None:
        """Set the generation's prompts and their entity spans (``find_spans(prompt, entities)``).

        Backbones differ only in how a prompt becomes tokens (SANA rewrites it first), so each
        passes its own ``find_spans``; checking the entity lists and resetting are shared.
        """
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        for index, prompt in enumerate(prompts):
            if not isinstance(prompt, str) or not prompt.strip():
                raise ConfigError(
                    f"Prompt {index} is {prompt!r}: DeLeaker needs a prompt that names the "
                    "entities.",
                    hint="Call the pipeline with a non-empty prompt=... that contains each "
                    "entity word.",
                )
        if (
            self.entities
            and isinstance(self.entities[0], list)
            and len(self.entities) != len(prompts)
        ):
            raise ConfigError(
                f"Got {len(prompts)} prompts but {len(self.entities)} entity lists.",
                hint="Give one entity list per prompt.",
            )
        self.spans = [find_spans(p, self.entities_for(i)) for i, p in enumerate(prompts)]
        self.prompts = prompts
        self.reset()

    def spans_for_batch(self) -> list[dict[str, list[int]]]:
        """Entity spans of each batch item of the current forward (images per prompt repeat)."""
        if self.spans is None:
            raise ConfigError(
                "DeLeaker does not know the prompt(s) of this generation.",
                hint="Call the pipeline with prompt=..., or pass prompts=[...] to deleaker().",
            )
        n = len(self.spans)
        if self.batch % n:
            raise ConfigError(
                f"The transformer batch ({self.batch}) is not a multiple of the prompts ({n}).",
                hint="Pass one prompt per image, or use num_images_per_prompt.",
            )
        per = self.batch // n
        out = [self.spans[b // per] for b in range(self.batch)]
        for spans, prompt in zip(out, [self.prompts[b // per] for b in range(self.batch)]):  # type: ignore[index]
            for entity, tokens in spans.items():
                if max(tokens) >= self.text_len:
                    raise EntityNotFoundError(
                        f"Entity {entity!r} sits at token {max(tokens)} but the text sequence "
                        f"has {self.text_len} tokens (prompt {prompt!r}).",
                        hint="Resolve entities with the max_sequence_length used to generate.",
                    )
        return out

    # -- clock ----------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget history and masks (a new generation starts)."""
        self.history: dict[Any, Any] = {}
        self.cache: dict[Any, Any] = {}
        self._masks: list[dict[str, dict[int, Any]]] = []
        self._last_step = None

    def begin_forward(
        self, *, step: int, num_steps: int, text_len: int, grid: tuple[int, int], batch: int
    ) -> None:
        """Called before each transformer forward with the geometry read from its inputs.

        A second forward at the same step (true CFG's unconditional pass) is left unedited; a
        step lower than the last one starts a new generation.
        """
        if self._last_step is not None and step < self._last_step:
            self.reset()
        self.active = self._last_step is None or step != self._last_step
        self._last_step = step
        self.step, self.num_steps = int(step), int(num_steps)
        self.text_len, self.grid, self.batch = int(text_len), grid, int(batch)
        self.windows = self.config.windows(self.num_steps, self.blocks_per_step)
        if self.active:
            self.batch_spans = self.spans_for_batch()
            while len(self._masks) < batch:
                self._masks.append({})

    def phase(self, offset: int) -> tuple[bool, bool]:
        """``(in_history, in_edit)`` for the block at ``offset`` in the current step.

        With given masks there is no history to keep.
        """
        if not self.active:
            return False, False
        g = self.step * self.blocks_per_step + offset
        h_lo, h_hi, e_lo, e_hi = self.windows
        feeds = self.given is None and self.feeds_history(offset)
        return feeds and h_lo <= g < h_hi, e_lo <= g < e_hi

    def feeds_history(self, offset: int) -> bool:
        """Whether the block at ``offset`` may add its map to the history (``mask_blocks``)."""
        which = self.config.mask_blocks
        if which == "all":
            return True
        if self.double_blocks is None:
            raise ConfigError(
                f"mask_blocks={which!r} needs a backbone with double- and single-stream blocks.",
                hint="Use mask_blocks=all on this backbone.",
            )
        return (offset < self.double_blocks) == (which == "double")

    def prompt_of(self, item: int) -> int:
        """The prompt index of batch item ``item`` (images per prompt repeat in the batch)."""
        per = max(1, self.batch // max(1, len(self.spans or ())))
        return item // per

    def given_masks(self, item: int, device) -> dict[str, Any] | None:
        """Item ``item``'s given masks on the current grid (``None`` without given masks).

        Resized once per generation, grid and device.
        """
        if self.given is None:
            return None
        index = self.prompt_of(item)
        key = ("given", index, self.grid, str(device))
        if key not in self.cache:
            prompt = self.prompts[index] if self.prompts else ""
            self.cache[key] = self.given.for_prompt(
                index, prompt, self.entities_for(index), self.grid, device
            )
        return self.cache[key]

    def history_frozen(self, offset: int) -> bool:
        """Whether the history can no longer change at this block (masks may be cached)."""
        g = self.step * self.blocks_per_step + offset
        return g >= self.windows[1]

    def record_mask(self, b: int, entity: str, mask, offset: int | None = None) -> None:
        """Keep the mask a block used, as the step's mask (later blocks overwrite), and show it
        to :attr:`observer` if one is set.

        Args:
            b: The image (batch item) index.
            entity: The entity.
            mask: Its flat boolean mask on the token grid.
            offset: The block's position in the step (for the observer).
        """
        # kept on the device (no host sync per block); moved to the CPU when read
        grid_mask = mask.reshape(self.grid).detach()
        self._masks[b].setdefault(entity, {})[self.step] = grid_mask
        if self.observer is not None:
            self.observer(b, entity, self.step, offset, grid_mask)

    def final_masks(self, b: int = 0) -> dict[str, Any]:
        """The last recorded ``(rows, cols)`` mask of each entity of batch item ``b``."""
        if b >= len(self._masks):
            return {}
        return {e: steps[max(steps)].cpu() for e, steps in self._masks[b].items() if steps}


def accumulate(store: dict, key, value) -> None:
    """Add one map to the equal-weight running mean kept as ``store[key] = (mean, count)``
    (NaNs replaced by the mean of the other values, as the official guard on attention maps)."""
    from . import ops

    mean, count = store.get(key, (None, 0))
    store[key] = ops.running_mean_update(mean, count, ops.nan_to_mean(value))


class BlockProcessor:
    """The part of a DeLeaker attention processor that does not depend on the backbone.

    Args:
        state: The installation's shared :class:`DeLeakerState`.
        offset: This block's position among the attention calls of one forward.
        original: The processor it replaces (run outside DeLeaker's windows).
    """

    def __init__(self, state: DeLeakerState, offset: int, original) -> None:
        self.state = state
        self.offset = offset
        self.original = original

    def history_ready(self, item) -> bool:
        """Whether masks of ``item`` (a history key: batch item or image) come from its history."""
        st = self.state
        return st.config.use_history and bool(st.history.get(item))

    def masks_from(self, scores: Mapping[str, Any]) -> dict[str, Any]:
        """Threshold (and smooth) per-entity scores into flat boolean image-token masks."""
        from . import ops

        cfg = self.state.config
        return {
            e: ops.entity_mask(
                s,
                cfg.beta1,
                self.state.grid,
                smoothing=cfg.smoothing,
                open_iterations=cfg.open_iterations,
                close_iterations=cfg.close_iterations,
            )
            for e, s in scores.items()
        }

    def current_masks(self, item, scores: Mapping[str, Any] | None, device=None) -> dict[str, Any]:
        """This block's masks of ``item``: the given masks if there are any; else from its
        score history once it has one, else from this block's ``scores``; cached once the
        history is frozen (they cannot change then).

        Args:
            item: The history key (``{entity: (running mean, count)}`` under it).
            scores: This block's ``{entity: (N,) scores}``; unused while the history serves.
            device: Where given masks are needed.
        """
        st = self.state
        if st.given is not None:
            return st.given_masks(item, device)  # type: ignore[return-value]
        ready = self.history_ready(item)
        cacheable = ready and st.history_frozen(self.offset)
        key = ("masks", item)
        if cacheable and key in st.cache:
            return st.cache[key]
        source = {e: mean for e, (mean, _) in st.history[item].items()} if ready else scores
        masks = self.masks_from(source)  # type: ignore[arg-type]
        if cacheable:
            st.cache[key] = masks
        return masks


def configure(
    config: DeLeakerConfig | None, options: Mapping[str, Any], implementation: str
) -> DeLeakerConfig:
    """The config of one installation, from ``config`` or keyword options, and check
    ``implementation``.

    Raises:
        ConfigError: Both a config and options, a config of another type, bad options, or an
            unknown implementation.
    """
    if config is not None and options:
        raise ConfigError("Pass either config=... or DeLeaker options, not both.")
    if config is None:
        config = build_config(DeLeakerConfig, dict(options), owner="deleaker")
    elif not isinstance(config, DeLeakerConfig):
        raise ConfigError(f"config must be a DeLeakerConfig, got {type(config).__name__}.")
    if implementation not in ("fast", "reference"):
        raise ConfigError(
            f"implementation={implementation!r} is not known.", hint="Use 'fast' or 'reference'."
        )
    return config


def give_masks(state: DeLeakerState, masks: Any) -> None:
    """Hand an installation masks from outside (``masks=`` of ``install``), or check that
    its config expects none.

    Raises:
        ConfigError: ``masks`` of the wrong shape, or a config naming a mask source (which the
            registered method resolves) with no ``masks=`` given.
    """
    from .given import ATTENTION, GivenMasks

    if masks is None:
        if state.config.masks != ATTENTION:
            raise ConfigError(
                f"The config says masks={state.config.masks!r}, but no masks were given.",
                hint="In diffusers code pass masks= (one {entity: mask} per prompt, or a "
                "callable) and leave the config's masks at 'attention'.",
            )
        return
    state.given = GivenMasks(masks)


@contextlib.contextmanager
def installed(
    model,
    processors: Mapping[str, Any],
    *,
    pre_hook: Callable | None = None,
    patches: Sequence[tuple[Any, str, Any]] = (),
) -> Iterator[None]:
    """Install attention processors (and an optional forward pre-hook and attribute patches)
    on ``model``, restoring the originals on exit, even after an error.

    Args:
        model: A diffusers model with ``attn_processors`` / ``set_attn_processor``.
        processors: Replacement processor per ``attn_processors`` key (all keys).
        pre_hook: ``hook(module, args, kwargs)`` registered with ``with_kwargs=True``.
        patches: ``(object, attribute, value)`` set for the duration.
    """
    original = dict(model.attn_processors)
    missing = set(original) - set(processors)
    if missing:
        raise ConfigError(f"No DeLeaker processor for {sorted(missing)[:3]} ...")
    handle = None
    saved = []
    try:
        for obj, name, value in patches:
            saved.append((obj, name, obj.__dict__.get(name, _MISSING)))
            setattr(obj, name, value)
        model.set_attn_processor(dict(processors))
        if pre_hook is not None:
            handle = model.register_forward_pre_hook(pre_hook, with_kwargs=True)
        yield
    finally:
        if handle is not None:
            handle.remove()
        model.set_attn_processor(dict(original))
        for obj, name, old in reversed(saved):
            if old is _MISSING:
                with contextlib.suppress(AttributeError):
                    delattr(obj, name)
            else:
                setattr(obj, name, old)


_MISSING = object()

"""Entity -> token positions in the text part of the joint attention sequence.

The prompt is tokenised once with character offsets; an entity is found as a case-insensitive
whole-word match in the prompt text and every token whose characters overlap the match is taken.
That handles words split into several pieces, repeated words (choose the occurrence), "cow" inside
"cowboy" (no match), and truncation at ``max_sequence_length`` (an error, not a silent miss).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from ...errors import ConfigError, EntityNotFoundError

#: SentencePiece's word-boundary piece when it stands alone (it carries no word identity).
_LONE_PIECES = ("\u2581",)


def entity_pattern(entity: str) -> re.Pattern:
    """The whole-word rule of entity matching: ``entity``'s words, case-insensitive, separated
    by any whitespace, with no word character on either side ("cow" does not match "cowboy").

    Backbones that rewrite the prompt before encoding it (SANA prepends an instruction) use it
    to count mentions in the text they really encode.
    """
    words = [re.escape(w) for w in entity.split()]
    return re.compile(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", re.IGNORECASE)


def find_entity_tokens(
    tokenizer,
    prompt: str,
    entity: str,
    occurrence: int = 0,
    *,
    max_sequence_length: int | None = None,
) -> list[int]:
    """Positions of ``entity``'s tokens in the tokenised ``prompt``.

    Positions index the sequence the text encoder sees (special tokens included, right padding
    excluded), which is the text part of the joint attention.

    Args:
        tokenizer: A fast (offset-capable) tokenizer, e.g. FLUX's T5 ``tokenizer_2``.
        prompt: The full prompt.
        entity: The entity as written in the prompt ("cow", "blue jay"); case-insensitive,
            whole words only.
        occurrence: Which match to use when the entity occurs several times (0 = first).
        max_sequence_length: The text length the pipeline truncates to; an entity cut off by it
            is an error.

    Returns:
        Sorted token positions: every piece of the matched span, except a lone SentencePiece
        word-boundary piece at its start (the official rule, method specification §3.3). A lone
        boundary piece inside a multi-word entity ("blue jay" where "jay" is spelt as
        ``▁ j a y``) is kept, as the official code keeps it.

    Raises:
        EntityNotFoundError: The entity does not occur (often enough) or is truncated.
        ConfigError: Bad arguments (empty entity, negative occurrence, slow tokenizer).
    """
    if not isinstance(entity, str) or not entity.strip():
        raise ConfigError(
            f"Entity {entity!r} is empty.", hint="Give each entity as a word of the prompt."
        )
    if not isinstance(occurrence, int) or occurrence < 0:
        raise ConfigError(
            f"occurrence={occurrence!r} is not a non-negative integer.",
            hint="Use 0 for the first mention, 1 for the second ...",
        )
    matches = list(entity_pattern(entity).finditer(prompt))
    if len(matches) <= occurrence:
        found = f"occurs {len(matches)} time(s)" if matches else "does not occur as a whole word"
        raise EntityNotFoundError(
            f"Entity {entity!r} {found} in the prompt {prompt!r}"
            + (f" (occurrence {occurrence} asked)." if matches else "."),
            hint="Entities must appear verbatim as whole words (case-insensitive): "
            "'cat' does not match 'cats' or 'catfish'.",
        )
    match = matches[occurrence]
    kwargs: dict = {"return_offsets_mapping": True, "add_special_tokens": True}
    if max_sequence_length is not None:
        kwargs.update(truncation=True, max_length=int(max_sequence_length))
    try:
        enc = tokenizer(prompt, **kwargs)
    except NotImplementedError as exc:
        raise ConfigError(
            f"The tokenizer {type(tokenizer).__name__} gives no character offsets.",
            hint="Use a fast (Rust-backed) tokenizer.",
        ) from exc
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    hits = [
        i for i, (s, e) in enumerate(offsets) if e > s and s < match.end() and e > match.start()
    ]
    covered = max((offsets[i][1] for i in hits), default=-1)
    if not hits or covered < match.end():
        raise EntityNotFoundError(
            f"Entity {entity!r} falls past max_sequence_length={max_sequence_length} in the "
            f"prompt {prompt!r}.",
            hint="Shorten the prompt or raise max_sequence_length (256 or 512 on FLUX).",
        )
    first = tokenizer.convert_ids_to_tokens(enc["input_ids"][hits[0]])
    return hits[1:] if first in _LONE_PIECES and len(hits) > 1 else hits


def find_entity_spans(
    tokenizer,
    prompt: str,
    entities: Sequence[str],
    *,
    max_sequence_length: int | None = None,
    occurrences: Mapping[str, int] | None = None,
) -> dict[str, list[int]]:
    """Token positions of every entity of one prompt, in entity order.

    Args:
        tokenizer: As for :func:`find_entity_tokens`.
        prompt: The full prompt.
        entities: Distinct entity strings.
        max_sequence_length: Truncation length of the pipeline.
        occurrences: Optional occurrence index per entity (default 0).

    Raises:
        ConfigError: Repeated entities.
        EntityNotFoundError: As for :func:`find_entity_tokens`.
    """
    if len({e.lower() for e in entities}) != len(entities):
        raise ConfigError(
            f"Entities {list(entities)!r} repeat a name.", hint="Give each entity once per prompt."
        )
    occurrences = dict(occurrences or {})
    return {
        e: find_entity_tokens(
            tokenizer,
            prompt,
            e,
            occurrences.get(e, 0),
            max_sequence_length=max_sequence_length,
        )
        for e in entities
    }

"""The judge's stages: extraction -> typicality -> ranking, one module each.

:data:`PROTOCOL` is the pipeline every judge runs unless given another (``docs/judge.md``
explains the reasoning). Each stage module holds its :class:`Question` objects (prompt file,
schema, parser, local answer) and its :class:`Stage` (what it asks per unit, what it
concludes); :mod:`.base` says what those are and :mod:`.schema` holds the shared JSON-answer
checks. Prompts are versioned files ``judge/prompts/<question>.<version>.txt``; changing one
means a new version (the version is part of every cache key and of every manifest).
"""

from __future__ import annotations

from .base import (
    REPAIR_VERSION,
    Ask,
    Asked,
    Pipeline,
    Question,
    Scope,
    Stage,
    Unit,
    entity_list,
    load_prompt,
    repair_text,
    sample_fields,
)
from .extraction import EXTRACTION, EXTRACTION_IMAGES, EXTRACTION_TEXT, merge_features
from .ranking import RANKING, RANKING_QUESTION, combine_orders, ranking_label, report_text
from .schema import extract_json, portable_schema, validate
from .typicality import (
    TYPICALITY,
    TYPICALITY_MAX,
    TYPICALITY_MIN,
    TYPICALITY_QUESTION,
    feature_block,
    is_leaky,
    typicality_of,
)

#: The judging protocol: features, then one typicality report per image, then the ranking of
#: the two reports in both orders, which decides; typicality alone checks single images.
PROTOCOL = Pipeline((EXTRACTION, TYPICALITY, RANKING), decides="ranking", checks="typicality")

__all__ = [
    "EXTRACTION",
    "EXTRACTION_IMAGES",
    "EXTRACTION_TEXT",
    "PROTOCOL",
    "RANKING",
    "RANKING_QUESTION",
    "REPAIR_VERSION",
    "TYPICALITY",
    "TYPICALITY_MAX",
    "TYPICALITY_MIN",
    "TYPICALITY_QUESTION",
    "Ask",
    "Asked",
    "Pipeline",
    "Question",
    "Scope",
    "Stage",
    "Unit",
    "combine_orders",
    "entity_list",
    "extract_json",
    "feature_block",
    "is_leaky",
    "load_prompt",
    "merge_features",
    "portable_schema",
    "ranking_label",
    "repair_text",
    "report_text",
    "sample_fields",
    "typicality_of",
    "validate",
]

"""The `fuzz` check: property-based mutations of a valid leaderboard entry."""

from __future__ import annotations

import copy
import json
import math
import random
from collections import Counter
from collections.abc import Callable
from typing import Any


# -- 6. leaderboard fuzzing ----------------------------------------------------------------------
def fuzz_base_entry(n: int = 24, seed: int = 0) -> tuple[dict, Callable, dict]:
    """A valid entry over ``n`` synthetic samples, with its dataset resolver and pinned judge."""
    from slim_leakage.leaderboard.pinned import load_pinned
    from slim_leakage.leaderboard.testing import synthetic_entry
    from slim_leakage.leaderboard.validate import DatasetReference
    from slim_leakage.records import LABELS, Sample, Verdict

    rng = random.Random(seed)
    samples = tuple(
        Sample(
            id=f"p{i:03d}",
            prompt="a cat and a lion",
            entities=("cat", "lion"),
            seed=i,
            subset=("simple", "interaction")[i % 2],
            family=("felines", "canids", "birds")[i % 3],
        )
        for i in range(n)
    )
    verdicts = []
    for s in samples:
        error = rng.random() < 0.1
        verdicts.append(
            Verdict(
                sample_id=s.id,
                method="m",
                label=None if error else rng.choice(LABELS),
                error="judge failed" if error else None,
                order_flip=(not error) and rng.random() < 0.2,
            )
        )
    entry = synthetic_entry(
        samples, verdicts, fingerprint="fp", name="fuzz", backbone="tiny-random"
    )
    reference = DatasetReference(config="pairs", fingerprint="fp", samples=samples)

    def resolver(config: str) -> DatasetReference:
        from slim_leakage.errors import ValidationError

        if config != "pairs":
            raise ValidationError(f"Dataset config {config!r} is not known.")
        return reference

    return entry, resolver, load_pinned()


#: Paths (as tuples of keys) whose change must make an entry invalid.
def is_protected(path: tuple) -> bool:
    """Whether a change at ``path`` changes an aggregate or a verdict."""
    if not path:
        return True
    if path[0] == "metrics":
        from slim_leakage.metrics import AGGREGATE_FIELDS

        return len(path) >= 2 and path[1] in AGGREGATE_FIELDS
    if path[0] == "verdicts":
        return len(path) < 3 or path[2] in {"sample_id", "subset", "family", "label", "order_flip"}
    # The judge identity is no longer a validity matter: an entry by another judge is valid
    # and simply cannot be verified (the ``forgeries`` check covers what verification needs).
    return path[0] in {"schema", "schema_version", "dataset"}


def same_json(a: Any, b: Any) -> bool:
    """Equal as JSON values (1 and 1.0 are the same number; True and 1 are not)."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        if isinstance(a, float) and math.isnan(a) or isinstance(b, float) and math.isnan(b):
            return False
        return a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same_json(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same_json(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += _paths(v, prefix + (i,))
    return out


def _get(doc: Any, path: tuple) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def mutation_strategy(entry: dict):
    """A hypothesis strategy of (description, mutated entry, protected-change flag)."""
    from hypothesis import strategies as st

    paths = [p for p in _paths(entry) if p]
    json_scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.sampled_from([10**400, -(10**400), 0, 1, -1, 2**63]),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(max_size=12),
        st.sampled_from(
            [
                "",
                "no-change",
                "mitigation-major",
                "degradation-minor",
                "nan",
                "NaN",
                "1e309",
                "../../etc/passwd",
                "__import__('os')",
                "p000",
            ]
        ),
    )
    json_values = st.recursive(
        json_scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
        ),
        max_leaves=6,
    )

    def numeric_nudge(value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return st.just(value)
        return st.sampled_from(
            [value + 1, value - 1, value + 1e-6, value * 2, -value, value + 0.5, float(value)]
        )

    @st.composite
    def mutate(draw):
        doc = copy.deepcopy(entry)
        op = draw(st.sampled_from(["set", "nudge", "delete", "add", "swap", "dup", "retype"]))
        path = draw(st.sampled_from(paths))
        parent, key = _get(doc, path[:-1]), path[-1]
        old = copy.deepcopy(parent[key])
        if op == "set":
            parent[key] = draw(json_values)
        elif op == "nudge":
            parent[key] = draw(numeric_nudge(old))
        elif op == "delete":
            del parent[key]
        elif op == "add":
            target = old if isinstance(old, (dict, list)) else parent
            if isinstance(target, dict):
                target[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
            else:
                target.insert(draw(st.integers(0, len(target))), draw(json_values))
        elif op == "swap" and isinstance(parent, list) and len(parent) > 1:
            j = draw(st.integers(0, len(parent) - 1))
            parent[key], parent[j] = parent[j], parent[key]
        elif op == "dup" and isinstance(parent, list):
            parent.insert(key, copy.deepcopy(parent[key]))
        elif op == "retype":
            parent[key] = (
                json.loads(json.dumps(old))
                if not isinstance(old, (int, float))
                else (str(old) if not isinstance(old, bool) else int(old))
            )
        changed = not same_json(doc, entry)
        protected = changed and _protected_change(entry, doc)
        return f"{op} {'.'.join(map(str, path))}", doc, protected

    return mutate()


def _protected_change(old: Any, new: Any, path: tuple = ()) -> bool:
    """Whether ``new`` differs from ``old`` anywhere that :func:`is_protected` names."""
    if same_json(old, new):
        return False
    if isinstance(old, dict) and isinstance(new, dict):
        return any(
            _protected_change(old.get(k), new.get(k), path + (k,))
            if k in old and k in new
            else is_protected(path + (k,))
            for k in set(old) | set(new)
        )
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        return any(_protected_change(a, b, path + (i,)) for i, (a, b) in enumerate(zip(old, new)))
    return is_protected(path)


def check_fuzz(cases: int, seed: int = 0, log=print) -> dict:
    """Mutate a valid entry ``cases`` times; count crashes and wrong acceptances."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hseed

    from slim_leakage.leaderboard.validate import validate_entry

    entry, resolver, pinned = fuzz_base_entry()
    base = validate_entry(copy.deepcopy(entry), pinned=pinned, dataset=resolver)
    if not base.ok:
        raise RuntimeError(f"the base entry is not valid: {base.problems}")
    stats = Counter()
    examples: list[str] = []

    @hseed(seed)
    @settings(
        max_examples=cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=False,
    )
    @given(mutation_strategy(entry))
    def one(case):
        what, doc, protected = case
        stats["cases"] += 1
        # Entries reach the validator through a JSON file: round-trip like one.
        text = json.dumps(doc, allow_nan=True)
        parsed = json.loads(text)
        try:
            report = validate_entry(parsed, pinned=pinned, dataset=resolver)
        except Exception as exc:  # noqa: BLE001 - counting crashes is the point
            stats["crashes"] += 1
            if len(examples) < 10:
                examples.append(f"crash on {what}: {type(exc).__name__}: {exc}"[:300])
            return
        if protected:
            stats["protected"] += 1
            if report.ok:
                stats["wrongly_accepted"] += 1
                if len(examples) < 10:
                    examples.append(f"accepted {what}")
        elif report.ok:
            stats["accepted_harmless"] += 1

    one()
    log(f"fuzz: {dict(stats)}")
    return {
        "fuzz_cases": stats["cases"],
        "fuzz_protected_changes": stats["protected"],
        "fuzz_wrongly_accepted": stats["wrongly_accepted"],
        "fuzz_crashes": stats["crashes"],
        "fuzz_harmless_accepted": stats["accepted_harmless"],
        "fuzz_examples": examples,
    }

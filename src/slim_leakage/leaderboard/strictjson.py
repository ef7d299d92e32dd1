"""Read leaderboard files (entries, records) as strict JSON, refusing what could mislead.

Python's ``json`` module accepts more than RFC 8259 interoperably means: a repeated key keeps
its last value (so two readers of one file may see two entries), integers of any size (a
400-digit count crashes formatting and is no JavaScript number), nesting until the interpreter
runs out of stack, ``NaN``/``Infinity``, and ``\\ud800``-style escapes that decode to lone
surrogates (no UTF-8 string can hold one, so signing or writing the value crashes later). Each
of those is refused here with one line naming the fault, before anything else reads the file.

The limits (documented in ``docs/leaderboard.md``):

- a file of at most :data:`MAX_FILE_BYTES` bytes, UTF-8, one JSON object;
- nesting of at most :data:`MAX_DEPTH` arrays/objects;
- integers within +-2**53 (:data:`MAX_SAFE_INTEGER`), the range every JSON reader keeps exact;
- no repeated key in any object, no ``NaN``/``Infinity``, no lone surrogate in any string.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..errors import ValidationError

#: Largest entry or record file read (a 96-sample entry is about 45 KB; the full ``pairs``
#: config about 2 MB).
MAX_FILE_BYTES = 16 * 1024 * 1024
#: Deepest nesting of arrays and objects (an entry needs 5).
MAX_DEPTH = 32
#: Largest integer magnitude kept exact by every JSON reader (IEEE double, RFC 8259 sec. 6).
MAX_SAFE_INTEGER = 2**53

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(rb"[\[\]{}]")


class _Refused(ValueError):
    """A fault found while parsing (turned into one ValidationError line)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise _Refused(f"the key {key[:60]!r} occurs twice in one object")
        out[key] = value
    return out


class _Bad:
    """A value the parser met but JSON readers disagree on; refused with its path after."""

    __slots__ = ("why",)

    def __init__(self, why: str) -> None:
        self.why = why


def _int(text: str) -> int | _Bad:
    digits = len(text.lstrip("-"))
    if digits <= 16 and abs(int(text)) <= MAX_SAFE_INTEGER:
        return int(text)
    shown = text if len(text) <= 24 else f"{text[:12]}...({digits} digits)"
    return _Bad(f"the integer {shown} is beyond +-2^53")


def _constant(name: str) -> _Bad:
    return _Bad(f"{name} is not a JSON number")


def nesting_depth(data: bytes) -> int:
    """The deepest nesting of arrays/objects in JSON text (brackets inside strings ignored)."""
    depth = deepest = 0
    for match in _BRACKET.finditer(_STRING.sub(b'""', data)):
        if match.group() in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def _check_strings(value: Any, path: str = "") -> None:
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, _Bad):
            raise _Refused(f"{where or 'the value'}: {item.why}")
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise _Refused(f"{where or 'a string'} holds a lone surrogate") from None
        elif isinstance(item, dict):
            for key, sub in item.items():
                stack.append((key, f"a key in {where or 'the top object'}"))
                stack.append((sub, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((sub, f"{where}[{i}]") for i, sub in enumerate(item))


def loads_strict(data: bytes, *, where: str = "the file") -> Any:
    """Parse JSON bytes under the module's rules.

    Raises:
        ValidationError: One line naming the first fault found.
    """
    if len(data) > MAX_FILE_BYTES:
        raise ValidationError(
            f"{where} is {len(data):,} bytes, above the {MAX_FILE_BYTES:,}-byte limit.",
            hint="An entry holds one row per sample; a larger file is not an entry.",
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{where} is not UTF-8 ({exc}).") from exc
    depth = nesting_depth(data)
    if depth > MAX_DEPTH:
        raise ValidationError(
            f"{where} nests {depth} levels deep, beyond the limit of {MAX_DEPTH}.",
            hint="An entry nests 5 levels; write the fields as docs/leaderboard.md lists them.",
        )
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_int=_int, parse_constant=_constant)
        _check_strings(doc)
    except _Refused as exc:
        raise ValidationError(f"{where} is refused: {exc}.") from None
    except (json.JSONDecodeError, RecursionError) as exc:
        raise ValidationError(f"{where} is not valid JSON ({exc}).") from None
    return doc


def read_strict(path: str | Path, *, what: str = "file") -> tuple[bytes, Any]:
    """A file's bytes and its strict JSON; the size is checked before the file is read.

    Raises:
        ValidationError: For a missing file, one above the size limit or any fault above.
    """
    path = Path(path)
    if not path.is_file():
        raise ValidationError(f"The {what} {str(path)!r} does not exist.")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise ValidationError(
            f"{path} is {size:,} bytes, above the {MAX_FILE_BYTES:,}-byte limit of a {what}."
        )
    raw = path.read_bytes()
    return raw, loads_strict(raw, where=str(path))

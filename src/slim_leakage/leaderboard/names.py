"""Display names that cannot impersonate, and text that cannot inject into Markdown or HTML.

Two entries may not share a display name once the names are compared as a reader sees them
(:func:`name_key`): Unicode NFKC normalisation (full-width and ligature forms fold to plain
letters), case folding, every invisible character removed (format characters such as zero-width
joiners and bidirectional controls, other control characters, variation selectors) and runs of
white space collapsed. "DeLeaker", "deleaker\\u200b" and "ＤｅＬｅａｋｅｒ" are one name.

:func:`md_cell` makes any text safe in a Markdown table cell: pipes, backslashes, Markdown
punctuation, HTML (``<!-- leaderboard:end -->`` included) and line breaks are escaped, so an
entry can neither add a row, a link or an image, nor move the README's table markers.
"""

from __future__ import annotations

import html
import re
import unicodedata

#: Characters with no visible glyph of their own: removed before names are compared.
_INVISIBLE_CATEGORIES = ("Cf", "Cc", "Cs", "Co", "Cn", "Mn", "Me")
_SPACE = re.compile(r"\s+")
#: Markdown punctuation that can start a link or an image (``[``), emphasis, code, a
#: strike-through or end a cell; ``<`` and ``&`` become HTML entities first. Heading and list
#: marks need a line start, which a cell never is.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def _visible(ch: str) -> bool:
    if unicodedata.category(ch) in _INVISIBLE_CATEGORIES:
        return False
    return not (0xFE00 <= ord(ch) <= 0xFE0F or 0xE0100 <= ord(ch) <= 0xE01EF)


def name_key(name: str) -> str:
    """The form two display names are compared in (see the module docstring)."""
    text = unicodedata.normalize("NFKC", name)
    text = "".join(ch for ch in text if _visible(ch) or ch.isspace())
    text = unicodedata.normalize("NFKC", text).casefold()
    return _SPACE.sub(" ", text).strip()


def name_problems(name: str, field: str = "name") -> list[str]:
    """Why a display or submitter name cannot be shown (empty: it can)."""
    key = name_key(name)
    if not key:
        return [f"{field}: {name!r} has no visible character"]
    if len(name) > 120:
        return [f"{field}: {len(name)} characters, the limit is 120"]
    hidden = ("Cf", "Cc", "Cs", "Co", "Cn")
    if any(unicodedata.category(c) in hidden for c in name):
        return [
            f"{field}: {name!r} holds invisible or control characters; write the name with "
            "visible characters and plain spaces only"
        ]
    return []


def md_cell(text: str) -> str:
    """``text`` escaped for one Markdown table cell (see the module docstring)."""
    text = _SPACE.sub(" ", str(text)).strip()
    text = html.escape(text, quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)

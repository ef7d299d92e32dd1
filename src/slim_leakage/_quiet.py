"""Quiet by default: optional quantisation libraries stay out unless a quantisation is asked
for, the model libraries log errors only, and third-party warnings are summarised once.

Why the quantisation libraries are kept out: importing diffusers' quantizers imports every
installed quantisation backend (``diffusers/quantizers/auto.py`` imports the bitsandbytes
quantizer, which imports ``bitsandbytes`` when ``is_bitsandbytes_available()``), and
bitsandbytes on a CPU with AVX512-BF16 then asks the Hugging Face Hub for a kernel
(``bitsandbytes/backends/cpu/ops.py``: ``kernels.get_kernel("kernels-community/...")``), a
network lookup nobody asked for, with a warning when it fails; torchao's import prints its own
warnings. Both libraries decide availability with ``importlib.util.find_spec``, which returns
``None`` for a name whose ``sys.modules`` entry is ``None`` (CPython's ``importlib/util.py``),
and Python's import system reference ("The module cache") says such an entry makes the import
raise ``ModuleNotFoundError``. So before diffusers
or transformers is first imported, the names are set to ``None`` unless a quantisation is asked
for; asked for later in the same process, they are released and the libraries' availability
flags read again.

The libraries' log records are kept to what a run's reader needs by
:func:`slim_leakage.progress.library_output` (which turns some into one note of ours); what
reaches Python's ``warnings`` from a library is counted here and said in one line.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterator

#: Optional quantisation libraries, imported only when a quantisation is asked for.
QUANTIZERS = ("bitsandbytes", "torchao")
#: This package's import name (its own warnings are shown, not summarised).
_OWN = __name__.split(".")[0]
#: The libraries whose import decides whether the quantizers are seen as installed.
_DECIDERS = ("diffusers", "transformers")


def keep_quantizers_out() -> bool:
    """Hide the quantisation libraries from diffusers and transformers, if neither has been
    imported yet; returns whether they are hidden now."""
    if any(name in sys.modules for name in _DECIDERS):
        return all(sys.modules.get(q, 0) is None for q in QUANTIZERS)
    for name in QUANTIZERS:
        if name not in sys.modules:
            sys.modules[name] = None  # type: ignore[assignment]
    return True


def allow_quantizers() -> None:
    """Make the quantisation libraries importable again (a quantisation was asked for), and
    let diffusers and transformers see them if they were imported while hidden."""
    released = [q for q in QUANTIZERS if q in sys.modules and sys.modules[q] is None]
    for name in released:
        del sys.modules[name]
    if not released:
        return
    utils = sys.modules.get("diffusers.utils.import_utils")
    if utils is not None:  # its availability flags were read at import; read them again
        with contextlib.suppress(Exception):
            for name in released:
                found = utils._is_package_available(name)
                setattr(utils, f"_{name}_available", found[0])
                setattr(utils, f"_{name}_version", found[1])


def quantizers_for(quantize: object) -> None:
    """Hide or release the quantisation libraries for a backbone's ``quantize`` option."""
    if quantize and str(quantize).lower() not in ("none", "false", "0"):
        allow_quantizers()
    else:
        keep_quantizers_out()


@contextlib.contextmanager
def summarised_warnings(report: Callable[[str], None]) -> Iterator[None]:
    """Collect the warnings raised inside the block; ``report`` gets one line naming how many
    came from which package (the project's own warnings are shown as they come)."""
    counts: Counter[str] = Counter()
    shown = warnings.showwarning

    def collect(message, category, filename, lineno, file=None, line=None):
        module = _package_of(filename)
        if module == _OWN:
            shown(message, category, filename, lineno, file, line)
        else:
            counts[module] += 1

    warnings.showwarning = collect
    try:
        yield
    finally:
        warnings.showwarning = shown
        if counts:
            parts = ", ".join(f"{name} {n}" for name, n in counts.most_common())
            report(
                f"note: {sum(counts.values())} warning(s) from libraries ({parts}); "
                "--debug shows them"
            )


def _package_of(filename: str) -> str:
    path = filename.replace("\\", "/")
    if f"/{_OWN}/" in path:
        return _OWN
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].removesuffix(".py")
    return os.path.basename(path).removesuffix(".py") or "python"

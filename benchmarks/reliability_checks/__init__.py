"""The reliability checks of ``benchmarks/reliability.py``, one module per family.

``common`` (fake keys, samples, the CLI calls, the workspace), ``kill``, ``faults``,
``bad_inputs`` (the runner; the cases are tables in ``cases_a``, ``cases_b``, ``cases_c`` and,
as plain data rows, ``cases_data``), ``secrets``, ``concurrent``, ``fuzz``, and ``cli`` (the
command line). The ``forgeries`` family is ``benchmarks/forgeries.py``, called with
``check_forgeries(path, run=..., log=...)``.
"""

#: The modules, in the order the checks run (``benchmarks/reliability.py`` re-exports them).
MODULES = (
    "common",
    "kill",
    "faults",
    "bad_inputs",
    "cases_a",
    "cases_b",
    "cases_c",
    "cases_data",
    "secrets",
    "concurrent",
    "fuzz",
    "cli",
)

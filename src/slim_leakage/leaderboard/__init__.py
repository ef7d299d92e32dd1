"""The leaderboard: versioned entries, their validation and verification, and the page.

Submodules: ``schema`` (the entry format, versions 1 and 2), ``pinned`` (the judge pinned per
dataset family and the maintainers' key fingerprint), ``build`` (run -> entry, reading the run
through :mod:`slim_leakage.rundir`), ``validate`` (entry -> problems), ``rejudge`` (the pinned
judge labels an entry's images again and decides), ``verification`` (signed records and their
check), ``signing`` (Ed25519), ``render`` (entries -> ranked HTML and Markdown).
Nothing here imports torch, an SDK or ``cryptography`` at module level.
"""

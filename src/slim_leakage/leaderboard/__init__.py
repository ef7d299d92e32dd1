"""The leaderboard: versioned entries built from runs, their validation, and the page.

Submodules: ``schema`` (the entry format), ``build`` (run -> entry, reading the run through
:mod:`slim_leakage.rundir`), ``validate`` (entry -> problems), ``rejudge`` (judge an entry's
images again), ``render`` (entries -> HTML and Markdown).
Nothing here imports torch or an SDK at module level.
"""

"""The leaderboard: versioned entries built from runs, their validation, and the page.

Submodules: ``rundir`` (read a run directory), ``schema`` (the entry format), ``build``
(run -> entry), ``validate`` (entry -> problems), ``render`` (entries -> HTML and Markdown).
Nothing here imports torch or an SDK at module level.
"""

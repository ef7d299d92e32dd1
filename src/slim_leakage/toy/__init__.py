"""The embedded toy world: what ``slim-eval --method deleaker`` runs on with no GPU, weights or keys.

This package holds the product plug-ins and what they need at run time:

- ``backbone``: the ``toy`` backbone preset (the trained model, shipped in ``weights/``);
- ``oracle``: the ``oracle`` judge backend, which reads images with ``reading``;
- ``slim_configs``: the toy SLIM configs (``toy-pairs``, ``toy-triplets``, ``toy-controls``);
- ``world`` (the scenes and their vocabulary) and ``model`` (the model's definition);
- ``plugins``: how the preset and the backend enter the registries (nothing below names them).

The research tooling that made and measured the world (training, measurements, the
``slim-eval toy`` commands' work) is in :mod:`slim_leakage.toy.lab`; nothing here imports it.
Submodules import torch and diffusers lazily; importing this package is light.
"""

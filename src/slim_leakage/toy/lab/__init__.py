"""Research tooling for the toy world: train the toy model and measure it.

- ``train``: trains the model of :mod:`slim_leakage.toy.model` on rendered scenes (resumable)
  and exports the diffusers folder that ships as the ``toy`` preset's weights;
- ``measure``: mask localisation, vanilla leakage with its control, and the oracle's own
  detection and false-alarm rates.

``slim-eval toy train`` and ``slim-eval toy measure`` call these. The product (the ``toy``
preset, the ``oracle`` backend, the toy configs) never imports this package.
"""

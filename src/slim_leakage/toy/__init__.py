"""The embedded toy world: procedural scenes, a tiny trained FLUX-architecture model, an oracle.

Submodules import torch and diffusers lazily; importing this package is light.
"""

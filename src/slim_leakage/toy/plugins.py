"""What the toy world plugs into the registries: the ``toy`` preset, the ``oracle`` judge backend
and the ``oracle`` mask source of DeLeaker.

The registries find this module by its name (``slim_leakage._registry.package_plugins``) and
read :data:`REGISTRATIONS` when they first list or look up a name, so the backbones and the
judge, on lower floors, never name the toy world. Nothing is imported here: the targets are
imported when first used, as every built-in is.
"""

from __future__ import annotations

#: Entry-point group -> {registry name: ``"module:attr"``}, as ``[project.entry-points]`` would
#: declare them.
REGISTRATIONS = {
    "slim_leakage.backbones": {"toy": "slim_leakage.toy.backbone:TOY"},
    "slim_leakage.judges": {"oracle": "slim_leakage.toy.oracle:OracleBackend"},
    "slim_leakage.mask_sources": {
        "oracle": "slim_leakage.toy.masks:oracle_masks",
        "oracle-coarse": "slim_leakage.toy.masks:oracle_coarse_masks",
        "oracle-boxes": "slim_leakage.toy.masks:oracle_box_masks",
    },
}

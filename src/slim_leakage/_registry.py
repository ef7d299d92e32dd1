"""The one registry pattern, shared by methods, judge backends and backbones.

A registry maps a stable lowercase-kebab name to an object. Built-ins are declared as a plain
``name -> "module:attr"`` mapping, so listing names imports nothing heavy (no torch, no SDK).
User code registers with a decorator; third-party packages register through an entry-point
group (``slim_leakage.methods``, ``slim_leakage.judges``, ``slim_leakage.backbones``). A
package of this distribution that sits on a higher floor than a registry (the toy world) plugs
in the same way from a source checkout: its ``plugins.py`` declares its entries by group, and
the registry finds that module by name (:func:`package_plugins`), so no lower module names a
higher one. A miss raises :class:`~slim_leakage.errors.UnknownNameError` with a did-you-mean
and the available names.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Generic, TypeVar

from .errors import ConfigError, UnknownNameError, did_you_mean

T = TypeVar("T")

_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-+")


def _check_name(name: str) -> str:
    if not name or not set(name) <= _NAME_CHARS or name[0] in "-+":
        raise ConfigError(
            f"Registry name {name!r} is not lowercase-kebab.",
            hint="Use lowercase letters, digits and '-' (for example 'my-method').",
        )
    return name


def _load_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj: Any = module
    for part in attr.split(".") if attr else ():
        obj = getattr(obj, part)
    return obj


#: The module a package of ``slim_leakage`` adds to plug entries into the registries.
PLUGIN_MODULE = "plugins"

_plugins_lock = threading.Lock()
_plugins: dict[str, dict[str, str]] | None = None


def package_plugins() -> dict[str, dict[str, str]]:
    """The entries the packages of ``slim_leakage`` declare: ``{group: {name: "module:attr"}}``.

    A package ``slim_leakage/<package>/`` that plugs into a registry has a module
    ``plugins.py`` holding ``REGISTRATIONS``, the same group names and ``"module:attr"`` values
    that ``[project.entry-points]`` in pyproject would hold. Unlike entry points they are found
    from a source checkout without reinstalling, and unlike a built-in mapping they leave the
    registry, on the lowest floor, naming nothing above it. Each ``plugins.py`` is imported
    once per process (it must import nothing heavy: listing names reads it).

    Raises:
        ConfigError: If a ``plugins.py`` declares its entries in another shape.
    """
    global _plugins
    with _plugins_lock:
        if _plugins is None:
            _plugins = find_plugins(Path(__file__).resolve().parent, __package__)
        return _plugins


def find_plugins(root: Path, package: str) -> dict[str, dict[str, str]]:
    """Read ``REGISTRATIONS`` from every ``<root>/<subpackage>/plugins.py`` (see above).

    Args:
        root: The folder of the importable package ``package``.
        package: Its import name.
    """
    found: dict[str, dict[str, str]] = {}
    for sub in sorted(p.parent.name for p in root.glob(f"*/{PLUGIN_MODULE}.py")):
        module_name = f"{package}.{sub}.{PLUGIN_MODULE}"
        declared = getattr(importlib.import_module(module_name), "REGISTRATIONS", None)
        if not isinstance(declared, Mapping) or not all(
            isinstance(entries, Mapping)
            and all(isinstance(t, str) and ":" in t for t in entries.values())
            for entries in declared.values()
        ):
            raise ConfigError(
                f"{module_name}.REGISTRATIONS is not a mapping of entry-point group to "
                "{name: 'module:attr'}.",
                hint='Declare it as {"slim_leakage.judges": {"my-judge": "pkg.mod:Cls"}}.',
            )
        for group, entries in declared.items():
            taken = found.setdefault(group, {})
            for name, target in entries.items():
                if taken.setdefault(name, target) != target:
                    raise ConfigError(
                        f"{module_name} registers {name!r} in {group!r} as {target!r}, which "
                        f"another plug-in package already registers as {taken[name]!r}.",
                        hint="Give one of the two entries another name.",
                    )
    return found


class Registry(Generic[T]):
    """A name -> object registry with lazy built-ins, decorators and entry points.

    Args:
        kind: What the registry holds, for messages ("method", "judge backend").
        group: Entry-point group scanned for third-party registrations and for the entries of
            this distribution's plug-in packages (:func:`package_plugins`), or ``None``.
        builtins: ``name -> "module:attr"`` of the built-in entries (imported on first ``get``).
    """

    def __init__(
        self, kind: str, *, group: str | None = None, builtins: Mapping[str, str] | None = None
    ) -> None:
        self.kind = kind
        self.group = group
        self._lazy: dict[str, str] = {}
        self._objects: dict[str, T] = {}
        self._origin: dict[str, str] = {}
        self._lock = threading.RLock()
        self._entry_points_loaded = False
        self._declared: dict[str, str] = {}  # plug-in and entry-point targets, by name
        for name, target in (builtins or {}).items():
            self._lazy[_check_name(name)] = target
            self._origin[name] = "builtin"

    # -- registration -------------------------------------------------------------------------
    def register(self, name: str, obj: T | None = None, *, replace: bool = False):
        """Register ``obj`` under ``name``; usable as ``@registry.register("name")``.

        Raises:
            ConfigError: If ``name`` is taken and ``replace`` is false.
        """

        def _do(target: T) -> T:
            _check_name(name)
            with self._lock:
                self._load_entry_points()
                if not replace and (name in self._objects or name in self._lazy):
                    raise ConfigError(
                        f"A {self.kind} named {name!r} is already registered "
                        f"({self._origin.get(name, 'user code')}).",
                        hint="Choose another name, or pass replace=True to override it on purpose.",
                    )
                self._lazy.pop(name, None)
                self._objects[name] = target
                self._origin[name] = "user code"
            return target

        if obj is not None:
            return _do(obj)
        return _do

    def register_lazy(self, name: str, target: str, *, origin: str = "builtin") -> None:
        """Register a ``"module:attr"`` string, imported on first use."""
        _check_name(name)
        with self._lock:
            if name in self._objects or name in self._lazy:
                raise ConfigError(
                    f"A {self.kind} named {name!r} is already registered "
                    f"({self._origin.get(name, 'user code')}); {origin} registers it again.",
                    hint="Uninstall one of the two packages or rename the entry point.",
                )
            self._lazy[name] = target
            self._origin[name] = origin

    def unregister(self, name: str) -> None:
        """Remove ``name`` (used by tests and by plug-ins replacing themselves)."""
        with self._lock:
            self._objects.pop(name, None)
            self._lazy.pop(name, None)
            self._origin.pop(name, None)
            self._declared.pop(name, None)

    def _load_entry_points(self) -> None:
        if self._entry_points_loaded or self.group is None:
            return
        self._entry_points_loaded = True
        for name, target in package_plugins().get(self.group, {}).items():
            # They ship in this distribution, so they are built-ins wherever they are declared.
            self._declare(name, target, "builtin", f"The plug-in {name!r} in group {self.group!r}")
        for ep in entry_points(group=self.group):
            dist = getattr(ep.dist, "name", None)
            self._declare(
                ep.name,
                ep.value,
                f"entry point of {dist}" if dist else "entry point",
                f"The entry point {ep.name!r} in group {self.group!r} (from {dist or '?'})",
            )

    def _declare(self, name: str, target: str, origin: str, what: str) -> None:
        # Declared entries are found again on every refresh; the same target is no clash.
        if self._declared.get(name) == target or self._lazy.get(name) == target:
            self._declared[name] = target
            return
        if name in self._lazy or name in self._objects:
            raise ConfigError(
                f"{what} clashes with an existing {self.kind}.",
                hint="Rename the entry point (or the REGISTRATIONS entry) in the plug-in package.",
            )
        self.register_lazy(name, target, origin=origin)
        self._declared[name] = target

    def refresh_entry_points(self) -> None:
        """Scan the entry-point group again (after installing a plug-in in-process)."""
        with self._lock:
            self._entry_points_loaded = False
            self._load_entry_points()

    # -- lookup -------------------------------------------------------------------------------
    def names(self) -> list[str]:
        """All registered names, sorted; imports nothing."""
        with self._lock:
            self._load_entry_points()
            return sorted(set(self._lazy) | set(self._objects))

    def origin(self, name: str) -> str:
        """Where ``name`` was registered from ("builtin", "user code", "entry point of X")."""
        self._miss_check(name)
        return self._origin.get(name, "user code")

    def target(self, name: str) -> str | None:
        """The lazy ``"module:attr"`` string of ``name`` if it has not been imported yet."""
        with self._lock:
            self._load_entry_points()
            return self._lazy.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.names()

    def _miss_check(self, name: str) -> None:
        names = self.names()
        if not isinstance(name, str):  # get_method(123) would fail deep inside difflib
            raise UnknownNameError(
                f"A {self.kind} is named by a string, got {name!r} ({type(name).__name__}).",
                hint=f"Available {self.kind}s: {', '.join(names) or '(none)'}.",
            )
        if name not in names:
            raise UnknownNameError(
                f"Unknown {self.kind} {name!r}.{did_you_mean(name, names)}",
                hint=f"Available {self.kind}s: {', '.join(names) or '(none)'}.",
            )

    def get(self, name: str) -> T:
        """Return the object registered as ``name``, importing it if needed.

        Raises:
            UnknownNameError: With a did-you-mean and the list of available names.
        """
        with self._lock:
            self._miss_check(name)
            if name not in self._objects:
                target = self._lazy[name]
                obj = _load_target(target)
                self._objects[name] = obj
                del self._lazy[name]
            return self._objects[name]

    def items(self) -> list[tuple[str, T]]:
        """Every ``(name, object)``; this imports every entry."""
        return [(name, self.get(name)) for name in self.names()]

    def describe(self, describer: Callable[[T], Mapping[str, Any]] | None = None) -> list[dict]:
        """One row per entry for listings: its name, origin and what ``describer`` says of it.

        An entry that fails to import or to describe itself gets an ``error`` field instead
        (``"ImportError: ..."``), so that one broken plug-in does not hide the others.
        """
        rows = []
        for name in self.names():
            row: dict[str, Any] = {"name": name, "origin": self.origin(name)}
            if describer is not None:
                try:
                    row.update(describer(self.get(name)))
                except Exception as exc:
                    row["error"] = f"{type(exc).__name__}: {exc}"
            rows.append(row)
        return rows

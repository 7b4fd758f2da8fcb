"""Entry-point discovery for backends, model families and datasets.

The built-ins are declared in quantbench's own `pyproject.toml` under the same groups a
third-party package uses, so nothing here knows any plugin by name. Plugins are imported
lazily: listing names reads only package metadata; `get(name)` imports that one module.
"""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass, field
from typing import Any, Iterable

from quantbench.errors import DuplicatePluginError, PluginLoadError, UnknownPluginError, unknown_choice

BACKENDS_GROUP = "quantbench.backends"
FAMILIES_GROUP = "quantbench.families"
DATASETS_GROUP = "quantbench.datasets"
ENGINES_GROUP = "quantbench.engines"

_KIND_BY_GROUP = {
    BACKENDS_GROUP: "backend",
    FAMILIES_GROUP: "family",
    DATASETS_GROUP: "dataset",
    ENGINES_GROUP: "engine",
}


@dataclass
class Plugin:
    """One registered entry point with its provenance."""

    name: str
    group: str
    entry_point: metadata.EntryPoint
    package: str
    version: str
    _loaded: Any = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        return _KIND_BY_GROUP.get(self.group, self.group)

    def load(self) -> Any:
        """Import the plugin and instantiate it (entry points name a class or an instance)."""
        if self._loaded is None:
            try:
                target = self.entry_point.load()
                self._loaded = target() if isinstance(target, type) else target
            except Exception as error:  # any import-time failure is the plugin's, not ours
                raise PluginLoadError(
                    f"{self.kind} '{self.name}' from package {self.package} {self.version} failed to "
                    f"load ({self.entry_point.value}): {type(error).__name__}: {first_line(error)}"
                ) from error
        return self._loaded


def first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def provenance(entry_point: metadata.EntryPoint) -> tuple[str, str]:
    """(package, version) of the distribution that registered the entry point."""
    dist = getattr(entry_point, "dist", None)
    if dist is None:
        return "unknown", "unknown"
    return dist.metadata["Name"] or "unknown", dist.version or "unknown"


def unique_entry_points(entry_points: Iterable[metadata.EntryPoint], kind: str) -> list[metadata.EntryPoint]:
    """The entry points, each name once; a name two different packages register is a one-line error.

    The same package seen twice (its metadata on two sys.path entries, pointing at the same object)
    is one registration and is kept once; two packages would leave which one runs to install order.
    """
    kept: dict[str, metadata.EntryPoint] = {}
    for entry_point in entry_points:
        first = kept.setdefault(entry_point.name, entry_point)
        if first is entry_point or (provenance(first)[0], first.value) == (
            provenance(entry_point)[0],
            entry_point.value,
        ):
            continue
        (package, version), (other, other_version) = provenance(first), provenance(entry_point)
        raise DuplicatePluginError(
            f"{kind} '{entry_point.name}' is registered twice: by package {package} {version} ({first.value}) "
            f"and by package {other} {other_version} ({entry_point.value}); "
            "uninstall one of them or rename its entry point"
        )
    return list(kept.values())


class Registry:
    """The plugins of one entry-point group, by name."""

    def __init__(self, group: str, entry_points: Iterable[metadata.EntryPoint] | None = None):
        self.group = group
        self.kind = _KIND_BY_GROUP.get(group, group)
        if entry_points is None:
            entry_points = metadata.entry_points(group=group)
        self._plugins: dict[str, Plugin] = {}
        for entry_point in unique_entry_points(entry_points, self.kind):
            package, version = provenance(entry_point)
            self._plugins[entry_point.name] = Plugin(entry_point.name, group, entry_point, package, version)

    def names(self) -> list[str]:
        return sorted(self._plugins)

    def plugin(self, name: str) -> Plugin:
        try:
            return self._plugins[name]
        except KeyError:
            raise UnknownPluginError(unknown_choice(self.kind, name, self.names())) from None

    def get(self, name: str) -> Any:
        return self.plugin(name).load()

    def plugins(self) -> list[Plugin]:
        return [self._plugins[name] for name in self.names()]


_cache: dict[str, Registry] = {}


def registry(group: str) -> Registry:
    """The process-wide registry of a group, discovered once."""
    if group not in _cache:
        _cache[group] = Registry(group)
    return _cache[group]


def backends() -> Registry:
    return registry(BACKENDS_GROUP)


def families() -> Registry:
    return registry(FAMILIES_GROUP)


def datasets() -> Registry:
    return registry(DATASETS_GROUP)


def engines() -> Registry:
    return registry(ENGINES_GROUP)


def clear_cache() -> None:
    """Forget discovered registries (after installing a plugin into a running process)."""
    _cache.clear()

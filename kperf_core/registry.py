"""Name-keyed registries that plugins fill through the ``kperf_register_*`` hooks.

Each entry remembers the plugin that added it, so a clash names both sides, and ``kperf plugins``
can say who registered what. Registration order is kept; names are never silently replaced.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, Protocol, TypeVar

import attrs

from kperf_core.errors import PluginError


class Named(Protocol):
    """Anything registrable: it carries the name users write for it."""

    name: str


T = TypeVar("T")


@attrs.frozen
class Entry(Generic[T]):
    """One registered item and the plugin it came from."""

    name: str
    item: T
    origin: str


class Registry(Generic[T]):
    """Items of one kind (request types, scenarios, backends, sinks, commands) keyed by name.

    Plugins receive a view bound to their own plugin name (see :meth:`for_plugin`); they call
    :meth:`add` with the item, whose name is read from its ``name`` attribute unless given.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def for_plugin(self, origin: str) -> PluginRegistry[T]:
        """Return the view a single plugin registers through."""
        return PluginRegistry(self, origin)

    def _add(self, item: T, origin: str, name: str | None) -> T:
        key = name if name is not None else getattr(item, "name", None)
        if not isinstance(key, str) or not key:
            raise PluginError(
                f"plugin {origin!r} registered a {self.kind} without a name: {item!r} "
                "(give the class a non-empty `name` attribute)"
            )
        existing = self._entries.get(key)
        if existing is not None:
            raise PluginError(
                f"{self.kind} {key!r} is registered twice: by plugin {existing.origin!r} "
                f"({_describe(existing.item)}) and by plugin {origin!r} ({_describe(item)})"
            )
        self._entries[key] = Entry(key, item, origin)
        return item

    def __getitem__(self, name: str) -> T:
        return self._entries[name].item

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> T | None:
        entry = self._entries.get(name)
        return None if entry is None else entry.item

    def entries(self) -> list[Entry[T]]:
        return list(self._entries.values())

    def names(self) -> list[str]:
        return list(self._entries)


class PluginRegistry(Generic[T]):
    """The face of a :class:`Registry` that one plugin's hook implementation sees."""

    def __init__(self, registry: Registry[T], origin: str) -> None:
        self._registry = registry
        self.origin = origin

    @property
    def kind(self) -> str:
        return self._registry.kind

    def add(self, item: T, *, name: str | None = None) -> T:
        """Register ``item`` under ``name`` (default: ``item.name``); a taken name is an error."""
        return self._registry._add(item, self.origin, name)


def _describe(item: object) -> str:
    if isinstance(item, type):
        return f"{item.__module__}.{item.__qualname__}"
    cls = type(item)
    return f"{cls.__module__}.{cls.__qualname__} instance"

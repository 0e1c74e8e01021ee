"""One base for awdvd's frozen configuration dataclasses (optics, camera, recipes, networks, options).

A config is a ``@dataclass(frozen=True)`` that also derives from :class:`FrozenConfig`; it validates itself in
``__post_init__`` and gets, from here, JSON-able ``to_dict`` / ``from_dict`` (unknown fields are an error,
missing ones take defaults, lists become tuples where the default is a tuple), ``to_json`` / ``from_json`` and
``replace``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, TypeVar

from ._checks import check_known_fields

__all__ = ["FrozenConfig"]

C = TypeVar("C", bound="FrozenConfig")


def _plain(value: Any) -> Any:
    """``value`` with tuples turned into lists and nested configs into dicts (JSON's types)."""
    if isinstance(value, FrozenConfig):
        return value.to_dict()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _tupled(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_tupled(v) for v in value)
    return value


class FrozenConfig:
    """Mixin for frozen dataclasses: plain-dict and JSON forms, strict ``from_dict``, ``replace``."""

    def to_dict(self) -> dict:
        """Plain-dict form (JSON types only), for JSON files, sidecars and model files."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self)}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: dict) -> C:
        """Build from :meth:`to_dict` output; unknown keys are an error, missing keys take defaults."""
        check_known_fields(cls, data, f"{cls.__name__} field")
        return cls(**{key: _tupled(value) for key, value in data.items()})

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls: type[C], text: str) -> C:
        return cls.from_dict(json.loads(text))

    def replace(self: C, **changes) -> C:
        """A copy with ``changes`` applied (and validated again); unknown names are an error."""
        known = {f.name for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TypeError(f"{type(self).__name__} has no field(s) {unknown}; known: {sorted(known)}")
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

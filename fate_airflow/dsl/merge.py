"""Merging of parameter and conf layers (common ← role/party-specific ← trigger overrides)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` laid over it.

    Mappings present on both sides merge key by key, recursively; any other value in ``override``
    (scalar, list, null) replaces the one in ``base``, as FATE does for role-specific parameters.
    Neither argument is modified and the result shares no mutable value with them.

    :param base: the lower layer, e.g. ``component_parameters.common.<cpn>``.
    :param override: the upper layer, e.g. ``component_parameters.role.host.0.<cpn>``.
    """
    merged: dict[str, Any] = {key: copy.deepcopy(value) for key, value in base.items()}
    for key, value in override.items():
        current = merged.get(key)
        if isinstance(current, Mapping) and isinstance(value, Mapping):
            merged[key] = deep_merge(current, value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def merge_all(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """:func:`deep_merge` of several layers, lowest first; ``None`` layers are skipped."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            merged = deep_merge(merged, layer)
    return merged


__all__ = ["deep_merge", "merge_all"]

"""Fixtures of the federation integration tests (see :mod:`fedgw_support`)."""

from __future__ import annotations

from fedgw_support import net

__all__ = ["net"]

"""The FATE provider: FATE 2.2's own components (pyfate), run in the provider's isolated environment.

:class:`FateProviderComponent` runs one party share of one task the way FATE-Flow 2.2 does — FATE's
component entry point with a task config written here — but inside fate-airflow's task lifecycle:
inputs come from this party's store, outputs, models and metrics go back into it, federation goes
through the party gateway's PTP endpoint (FATE's ``osx`` protocol), and stop/abort ends the whole
process tree. The code that runs inside FATE's environment is :mod:`.fate_task` (a script, never
imported here).
"""

from __future__ import annotations

from fate_airflow.components.fate_provider.component import FateProviderComponent

__all__ = ["FateProviderComponent"]

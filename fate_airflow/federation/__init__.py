"""Layer 2: party-to-party transport. The only package that may import gRPC or generated protobuf code.

Public ports live in :mod:`fate_airflow.federation.api`; implementations in
:mod:`fate_airflow.federation.inmemory` and :mod:`fate_airflow.federation.grpc`.
"""

from __future__ import annotations

__all__: list[str] = []

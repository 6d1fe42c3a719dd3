"""FederationHook: an Airflow Connection → clients of the party's own federation gateway.

Workers and triggers only ever talk to their own party's gateway (which forwards to peers), so the
connection describes that one gateway: host/port, the party id, and the client certificate that
proves the caller belongs to the party. The connection is looked up lazily, never at DAG-parse time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from airflow.sdk import BaseHook

from fate_airflow.federation.api import Federation, FederationSession
from fate_airflow.federation.config import GatewayClientConfig
from fate_airflow.federation.grpc.client import GrpcControlClient, GrpcFederation


class FederationHook(BaseHook):
    """Build federation clients from a ``fate`` connection.

    Connection fields: ``host``/``port`` = the party's gateway; ``extra`` = the JSON form of
    :class:`~fate_airflow.federation.config.GatewayClientConfig` without the address (party id,
    CA/cert/key paths, or ``insecure: true`` for local demos only).

    :param fate_conn_id: the connection id (default ``fate_default``).
    """

    conn_name_attr = "fate_conn_id"
    default_conn_name = "fate_default"
    conn_type = "fate"
    hook_name = "FATE Federation"

    def __init__(self, fate_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fate_conn_id = fate_conn_id

    @staticmethod
    def _config(host: str | None, port: int | None, extra: dict[str, Any]) -> GatewayClientConfig:
        data = dict(extra)
        data["address"] = f"{host or '127.0.0.1'}:{port}"
        return GatewayClientConfig.from_dict(data)

    def client_config(self) -> GatewayClientConfig:
        """The gateway client configuration (looks the connection up)."""
        conn = self.get_connection(self.fate_conn_id)
        return self._config(conn.host, conn.port, conn.extra_dejson)

    async def aclient_config(self) -> GatewayClientConfig:
        """Async variant for triggers (never blocks the triggerer's event loop)."""
        conn = await self.aget_connection(self.fate_conn_id)
        return self._config(conn.host, conn.port, conn.extra_dejson)

    def get_conn(self) -> GrpcControlClient:
        """A control-plane client speaking as this party (Airflow's standard hook entry point)."""
        return GrpcControlClient(self.client_config())

    def control_client(self) -> GrpcControlClient:
        """Same as :meth:`get_conn`, with a name that says what it returns."""
        return self.get_conn()

    def federation_factory(self) -> Callable[[FederationSession], Federation]:
        """A factory of data-plane endpoints, one per (task version, role)."""
        config = self.client_config()

        def make(session: FederationSession) -> Federation:
            return GrpcFederation(session, config)

        return make

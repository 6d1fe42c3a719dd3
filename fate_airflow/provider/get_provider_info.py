"""Provider metadata: registers the ``fate`` connection type and the hook with Airflow."""

from __future__ import annotations

from typing import Any

from fate_airflow import __version__


def get_provider_info() -> dict[str, Any]:
    """What ``apache_airflow_provider`` entry points return (declarative; no import side effects)."""
    return {
        "package-name": "fate-airflow",
        "name": "FATE",
        "description": "Federated-learning jobs (FATE-Flow style) on Apache Airflow 3",
        "versions": [__version__],
        "hooks": [{"integration-name": "FATE", "python-modules": ["fate_airflow.provider.hooks.federation"]}],
        "triggers": [
            {"integration-name": "FATE", "python-modules": ["fate_airflow.provider.triggers.task_start"]}
        ],
        "connection-types": [
            {
                "connection-type": "fate",
                "hook-class-name": "fate_airflow.provider.hooks.federation.FederationHook",
                "hook-name": "FATE Federation",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "password"],
                    "relabeling": {"host": "Gateway host", "port": "Gateway port"},
                    "placeholders": {"host": "127.0.0.1", "port": "9370"},
                },
                "conn-fields": {
                    "party_id": {"label": "Party ID", "schema": {"type": ["string", "null"]}},
                    "ca_cert": {
                        "label": "Party CA certificate (path)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "client_cert": {
                        "label": "Client certificate (path)",
                        "schema": {"type": ["string", "null"]},
                    },
                    "client_key": {"label": "Client key (path)", "schema": {"type": ["string", "null"]}},
                    "insecure": {
                        "label": "Plaintext (local demos only)",
                        "schema": {"type": ["boolean", "null"]},
                    },
                },
            }
        ],
    }

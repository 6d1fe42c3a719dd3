"""FATE-Flow 2.x's client API at a fate-airflow party: FATE's ``pipeline`` SDK and ``flow`` CLI unchanged.

:mod:`.service` implements the calls, :mod:`.server` serves them over HTTP (``/v2/...``) from the
party's ``party serve`` process, :mod:`.jobs` keeps what only the API knows about its jobs.
"""

from fate_airflow.deploy.flow_api.errors import FlowApiError, ReturnCode, envelope
from fate_airflow.deploy.flow_api.server import Authenticator, FlowApiServer, create_app, signature
from fate_airflow.deploy.flow_api.service import FileReply, FlowApi

__all__ = [
    "Authenticator",
    "FileReply",
    "FlowApi",
    "FlowApiError",
    "FlowApiServer",
    "ReturnCode",
    "create_app",
    "envelope",
    "signature",
]

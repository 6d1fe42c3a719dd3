"""The FATE-Flow 2.x client API over HTTP (FastAPI in the party's ``party serve`` process).

It lives beside the gateway and the party service rather than in the Airflow api-server because
FATE's clients build their URLs as ``http://<ip>:<port>/v2/...`` with no path prefix, and because
everything it does goes through the party service (control commands) and the party's stores.

Who may call: a client on loopback without credentials (FATE's own default: its SDK never signs);
from any other address either FATE-Flow 2.x's client signature (``appId``, ``userName``, ``Nonce``,
``Timestamp``, ``Signature`` = md5(md5(app_id + user_name + nonce + timestamp) + app_token), at most
60 s old) with an app registered in the party's ``flow_api.apps_file``, or an Airflow token of this
party (``Authorization: Bearer``, checked against its api-server). Refusals and bad requests get
FATE's codes and a message naming the field; a server error is logged, never sent as a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import requests
import uvicorn
from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from fate_airflow.core.errors import ConfigError
from fate_airflow.deploy.flow_api.errors import FlowApiError, ReturnCode, envelope
from fate_airflow.deploy.flow_api.service import FileReply, FlowApi

log = logging.getLogger(__name__)

#: FATE-Flow rejects signed requests older than this (seconds).
SIGNATURE_MAX_AGE = 60.0
_Handler = Callable[[Mapping[str, Any]], Any]


def load_apps(path: Path | None) -> dict[str, str]:
    """App id → app token from a JSON file (``{"app_id": "token", ...}``); {} without a file."""
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read FATE-Flow client apps: {exc}") from None
    if not isinstance(data, Mapping) or not all(isinstance(v, str) for v in data.values()):
        raise ConfigError(f"{path}: expected a JSON object of app id → app token")
    return {str(k): str(v) for k, v in data.items()}


def signature(app_id: str, user_name: str, nonce: str, timestamp: str, app_token: str) -> str:
    """FATE-Flow 2.x's client signature (FATE-Client ``flow_sdk/utils/base_utils.py``)."""
    inner = hashlib.md5((app_id + user_name + nonce + timestamp).encode()).hexdigest().lower()
    return hashlib.md5((inner + app_token).encode()).hexdigest().lower()


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return host == "localhost"


class Authenticator:
    """Decides whether a request may use the API (see the module docstring).

    :param apps: app id → token, re-read for every signed request.
    :param airflow_url: the party's api-server, to check Airflow tokens.
    """

    def __init__(self, apps: Callable[[], Mapping[str, str]], airflow_url: str | None) -> None:
        self._apps = apps
        self._airflow_url = airflow_url.rstrip("/") if airflow_url else None
        self._tokens: dict[str, float] = {}
        self._lock = threading.Lock()

    def check(self, client_host: str | None, headers: Mapping[str, str]) -> None:
        """Raise :class:`FlowApiError` (5003) unless the request may proceed."""
        if headers.get("signature") or headers.get("appid"):
            self._check_signature(headers)
            return
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            self._check_airflow_token(auth[7:].strip())
            return
        if _is_loopback(client_host):
            return
        raise FlowApiError(
            ReturnCode.VERIFY_FAILED,
            f"authentication required from {client_host}: sign with appId/Nonce/Timestamp/Signature "
            "(flow init --app-id --app-token) or send an Airflow token (Authorization: Bearer)",
        )

    def _check_signature(self, headers: Mapping[str, str]) -> None:
        missing = [h for h in ("appId", "Nonce", "Timestamp", "Signature") if not headers.get(h.lower())]
        if missing:
            raise FlowApiError(ReturnCode.VERIFY_FAILED, f"signature headers missing: {', '.join(missing)}")
        app_id = headers["appid"]
        token = self._apps().get(app_id)
        if token is None:
            raise FlowApiError(ReturnCode.VERIFY_FAILED, f"unknown appId {app_id!r}")
        try:
            stamp = float(headers["timestamp"]) / 1000.0
        except ValueError:
            raise FlowApiError(ReturnCode.VERIFY_FAILED, "header Timestamp: expected milliseconds") from None
        if abs(time.time() - stamp) > SIGNATURE_MAX_AGE:
            raise FlowApiError(
                ReturnCode.EXPIRED, f"signature expired (older than {SIGNATURE_MAX_AGE:.0f} s)"
            )
        want = signature(app_id, headers.get("username", ""), headers["nonce"], headers["timestamp"], token)
        if not hmac.compare_digest(want, headers["signature"].lower()):
            raise FlowApiError(ReturnCode.VERIFY_FAILED, f"signature of appId {app_id!r} does not verify")

    def _check_airflow_token(self, token: str) -> None:
        key = hashlib.sha256(token.encode()).hexdigest()
        with self._lock:
            if self._tokens.get(key, 0.0) > time.time():
                return
        if self._airflow_url is None:
            raise FlowApiError(ReturnCode.VERIFY_FAILED, "Airflow tokens are not accepted here")
        try:
            resp = requests.get(
                f"{self._airflow_url}/api/v2/dags",
                params={"limit": 1},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
        except requests.RequestException as exc:
            raise FlowApiError(ReturnCode.SERVER_ERROR, f"cannot check the Airflow token: {exc}") from None
        if resp.status_code != 200:
            raise FlowApiError(ReturnCode.VERIFY_FAILED, f"Airflow refused the token ({resp.status_code})")
        with self._lock:
            self._tokens[key] = time.time() + 60.0


def create_app(api: FlowApi, auth: Authenticator) -> FastAPI:
    """The ``/v2`` routes of FATE-Flow's client API bound to ``api``."""
    app = FastAPI(
        title="FATE-Flow client API (fate-airflow)", docs_url=None, redoc_url=None, openapi_url=None
    )

    get_routes: dict[str, _Handler] = {
        "/site/info/query": api.site_info,
        "/provider/query": api.provider_query,
        "/job/query": api.job_query,
        "/job/list/query": api.job_list,
        "/job/task/query": api.task_query,
        "/job/task/list/query": api.task_list,
        "/job/dag/dependency": api.dag_dependency,
        "/table/query": api.table_query,
        "/output/data/download": api.data_download,
        "/output/data/display": api.data_display,
        "/output/data/table": api.data_table,
        "/output/model/query": api.model_query,
        "/output/model/download": api.model_download,
        "/output/metric/query": api.metric_query,
        "/output/metric/key/query": api.metric_key_query,
        "/log/count": api.log_count,
        "/log/query": api.log_query,
    }
    post_routes: dict[str, _Handler] = {
        "/job/submit": api.job_submit,
        "/job/stop": api.job_stop,
        "/job/rerun": api.job_rerun,
        "/job/notes/add": api.job_notes,
        "/job/log/download": api.log_download,
        "/data/component/upload": api.upload_server_file,
        "/data/component/dataframe/transformer": api.dataframe_transformer,
        "/table/bind/path": api.table_bind_path,
    }

    async def reply(request: Request, handler: Callable[[], Any]) -> Response:
        try:
            auth.check(request.client.host if request.client else None, request.headers)
            result = await run_in_threadpool(handler)
        except FlowApiError as exc:
            return JSONResponse(envelope(exc.code, exc.message))
        except Exception as exc:  # a client never gets a traceback; the party's log has it
            log.exception("FATE-Flow API %s %s failed", request.method, request.url.path)
            return JSONResponse(
                envelope(ReturnCode.SERVER_ERROR, f"server error: {type(exc).__name__}: {exc}")
            )
        if isinstance(result, FileReply):
            return Response(
                result.body,
                media_type=result.content_type,
                headers={"Content-Disposition": f'attachment; filename="{result.filename}"'},
            )
        return JSONResponse(result)

    async def json_body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = json.loads(raw)
        except ValueError:
            raise FlowApiError(ReturnCode.INVALID_PARAMETER, "request body: not valid JSON") from None
        if not isinstance(body, Mapping):
            raise FlowApiError(ReturnCode.INVALID_PARAMETER, "request body: expected a JSON object")
        return dict(body)

    def add_get(path: str, handler: _Handler) -> None:
        async def endpoint(request: Request) -> Response:
            params = dict(request.query_params)
            return await reply(request, lambda: handler(params))

        app.add_api_route(f"/v2{path}", endpoint, methods=["GET"], include_in_schema=False)

    def add_post(path: str, handler: _Handler) -> None:
        async def endpoint(request: Request) -> Response:
            try:
                body = await json_body(request)
            except FlowApiError as exc:
                return JSONResponse(envelope(exc.code, exc.message))
            return await reply(request, lambda: handler(body))

        app.add_api_route(f"/v2{path}", endpoint, methods=["POST"], include_in_schema=False)

    for path, handler in get_routes.items():
        add_get(path, handler)
    for path, handler in post_routes.items():
        add_post(path, handler)

    @app.post("/v2/data/component/upload/file", include_in_schema=False)
    async def upload_file(request: Request) -> Response:
        try:
            form = await request.form()
        except Exception as exc:  # a malformed multipart body
            return JSONResponse(envelope(ReturnCode.INVALID_PARAMETER, f"multipart body: {exc}"))
        part = form.get("file")
        if part is None or isinstance(part, str):
            return JSONResponse(envelope(ReturnCode.INVALID_PARAMETER, "multipart part 'file': missing"))
        content = await part.read()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        filename = part.filename or "upload.csv"
        return await reply(request, lambda: api.upload_file(fields, filename, content))

    @app.api_route("/v2/{rest:path}", methods=["GET", "POST"], include_in_schema=False)
    async def unknown(rest: str, request: Request) -> Response:
        return JSONResponse(
            envelope(ReturnCode.NO_FOUND, f"{request.method} /v2/{rest} is not part of this FATE-Flow API"),
            status_code=404,
        )

    return app


class FlowApiServer:
    """Serves :func:`create_app` on ``host:port`` in a background thread (uvicorn)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app, host=host, port=port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fate-flow-api", daemon=True)
        self.host, self.port = host, port

    def start(self, timeout: float = 15.0) -> None:
        """Start serving; returns once the port accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"the FATE-Flow API could not listen on {self.host}:{self.port}")
            time.sleep(0.05)
        log.info("FATE-Flow client API on http://%s:%s/v2", self.host, self.port)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop serving."""
        self._server.should_exit = True
        self._thread.join(timeout=timeout)


__all__ = ["Authenticator", "FlowApiServer", "create_app", "load_apps", "signature"]

"""A thin JSON client for the Kubernetes API, on kubernetes-asyncio's transport.

kubernetes-asyncio supplies what is hard to get right (kubeconfig and
in-cluster loading, client certificates, exec plugins, token refresh, TLS,
connection pooling); its generated typed models are not used. Objects are
read as plain JSON and handed to the same parser as the file source, so the
same object gives the same model whichever source read it, and no typed copy
of a 10k-pod cluster is ever built.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp

JSON = dict[str, Any]
Params = Sequence[tuple[str, str | int]]

_AUTH: Final = ["BearerToken"]
# One watch holds one HTTP/1.1 connection for minutes; the default pool (5 per
# core) would starve ordinary requests once every kind is watched.
_POOL_SIZE: Final = 128
_READ_TIMEOUT: Final = 30.0
# The server sends a bookmark about once a minute on an idle watch; a read that
# waits longer than this means a dead connection (no FIN after a crash or a
# partition), which is then replaced instead of hanging until the watch timeout.
WATCH_IDLE_LIMIT: Final = 90.0
_MAX_LINE: Final = 64 * 1024 * 1024


class ApiError(Exception):
    """A request failed: an HTTP status from the API server, or ``status`` 0 for transport."""

    def __init__(self, status: int, reason: str, message: str = "") -> None:
        super().__init__(f"{status} {reason}: {message}" if message else f"{status} {reason}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def gone(self) -> bool:
        """410: the resourceVersion is too old (compacted); list again."""
        return self.status == 410

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def forbidden(self) -> bool:
        return self.status == 403


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """How to reach the API server: kubeconfig (file, context) or in-cluster."""

    kubeconfig: Path | None = None
    context: str | None = None

    def describe(self) -> str:
        if self.kubeconfig is None and _in_cluster():
            return "in-cluster service account"
        path = self.kubeconfig or _default_kubeconfig()
        return f"kubeconfig {path}" + (f" (context {self.context})" if self.context else "")


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and not os.environ.get("KUBECONFIG")


def _default_kubeconfig() -> Path:
    paths = [p for p in os.environ.get("KUBECONFIG", "").split(os.pathsep) if p]
    return Path(paths[0]) if paths else Path.home() / ".kube" / "config"


async def connect(config: ClusterConfig) -> KubeApi:
    """A client for ``config``: in a pod without a kubeconfig, the pod's own account."""
    # Imported here: it takes ~0.4 s, which file mode should not pay at start-up.
    from kubernetes_asyncio import client as kube_client
    from kubernetes_asyncio import config as kube_config

    configuration = kube_client.Configuration()
    if config.kubeconfig is None and _in_cluster():
        kube_config.load_incluster_config(client_configuration=configuration)
    else:
        path = config.kubeconfig or _default_kubeconfig()
        if not path.is_file():
            raise FileNotFoundError(f"kubeconfig {path} does not exist")
        await kube_config.load_kube_config(
            config_file=str(path),
            context=config.context,
            client_configuration=configuration,
            persist_config=False,
        )
    configuration.connection_pool_maxsize = _POOL_SIZE
    return KubeApi(kube_client.ApiClient(configuration))


class KubeApi:
    """GET/LIST/WATCH/POST/PUT/PATCH/DELETE of JSON objects by path."""

    def __init__(self, api_client: Any) -> None:
        """``api_client``: a ``kubernetes_asyncio.client.ApiClient``."""
        self._client = api_client

    @property
    def host(self) -> str:
        return str(self._client.configuration.host)

    async def close(self) -> None:
        await self._client.close()

    async def _call(
        self,
        method: str,
        path: str,
        params: Params = (),
        body: Any = None,
        content_type: str = "application/json",
        limits: aiohttp.ClientTimeout | None = None,
    ) -> aiohttp.ClientResponse:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            response: aiohttp.ClientResponse = await self._client.call_api(
                path,
                method,
                query_params=list(params),
                header_params=headers,
                body=body,
                auth_settings=_AUTH,
                _preload_content=False,
                _request_timeout=limits or aiohttp.ClientTimeout(total=_READ_TIMEOUT),
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiError(0, type(error).__name__, str(error)) from None
        if response.status >= 300:
            raise await _error(response)
        return response

    async def request(
        self,
        method: str,
        path: str,
        params: Params = (),
        body: Any = None,
        content_type: str = "application/json",
    ) -> JSON:
        response = await self._call(method, path, params, body, content_type)
        try:
            data = await response.read()
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiError(0, type(error).__name__, str(error)) from None
        finally:
            response.release()
        return json.loads(data) if data else {}

    async def get(self, path: str, params: Params = ()) -> JSON:
        return await self.request("GET", path, params)

    async def create(self, path: str, body: Mapping[str, Any]) -> JSON:
        return await self.request("POST", path, body=dict(body))

    async def replace(self, path: str, body: Mapping[str, Any]) -> JSON:
        return await self.request("PUT", path, body=dict(body))

    async def merge_patch(self, path: str, patch: Mapping[str, Any]) -> JSON:
        return await self.request(
            "PATCH", path, body=dict(patch), content_type="application/merge-patch+json"
        )

    async def apply(self, path: str, body: Mapping[str, Any], field_manager: str) -> JSON:
        """Server-side apply of ``body`` (forced: we own the fields we set)."""
        return await self.request(
            "PATCH",
            path,
            [("fieldManager", field_manager), ("force", "true")],
            body=dict(body),
            content_type="application/apply-patch+yaml",
        )

    async def delete(self, path: str) -> JSON:
        return await self.request("DELETE", path)

    async def list_all(
        self, path: str, page_size: int = 500, params: Params = ()
    ) -> tuple[list[JSON], str]:
        """Every item of a collection, paged; and the list's resourceVersion."""
        items: list[JSON] = []
        token = ""
        while True:
            query: list[tuple[str, str | int]] = [*params, ("limit", page_size)]
            if token:
                query.append(("continue", token))
            page = await self.get(path, query)
            items.extend(page.get("items") or ())
            metadata = page.get("metadata") or {}
            token = metadata.get("continue") or ""
            if not token:
                return items, str(metadata.get("resourceVersion") or "")

    async def watch(
        self, path: str, resource_version: str, timeout_seconds: int, params: Params = ()
    ) -> AsyncIterator[JSON]:
        """The watch events after ``resource_version``, with bookmarks, until the server
        ends the watch (after about ``timeout_seconds``). A 410 arrives as ``ApiError``,
        whether as the response status or as an ERROR event."""
        query: list[tuple[str, str | int]] = [
            *params,
            ("watch", "true"),
            ("allowWatchBookmarks", "true"),
            ("resourceVersion", resource_version),
            ("timeoutSeconds", timeout_seconds),
        ]
        response = await self._call(
            "GET",
            path,
            query,
            limits=aiohttp.ClientTimeout(connect=_READ_TIMEOUT, sock_read=WATCH_IDLE_LIMIT),
        )
        try:
            buffer = b""
            async for chunk in response.content.iter_any():
                buffer += chunk
                if len(buffer) > _MAX_LINE:
                    raise ApiError(0, "TooLarge", "a watch event exceeds 64 MiB")
                *lines, buffer = buffer.split(b"\n")
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object") or {}
                        raise ApiError(
                            int(status.get("code") or 0),
                            str(status.get("reason") or "Error"),
                            str(status.get("message") or ""),
                        )
                    yield event
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            raise ApiError(0, type(error).__name__, str(error)) from None
        except json.JSONDecodeError as error:
            raise ApiError(0, "InvalidEvent", f"undecodable watch event: {error}") from None
        finally:
            response.release()


async def _error(response: aiohttp.ClientResponse) -> ApiError:
    """The API server's Status body, when it sent one, as an ``ApiError``."""
    reason, message = response.reason or "", ""
    try:
        status = json.loads(await response.read())
        reason = str(status.get("reason") or reason)
        message = str(status.get("message") or "")
    except (ValueError, aiohttp.ClientError, OSError, TimeoutError):
        pass
    finally:
        response.release()
    return ApiError(response.status, reason, message)

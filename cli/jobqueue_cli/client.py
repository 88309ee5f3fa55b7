"""A small synchronous client of the job API (httpx): one method per route the CLI uses."""

from __future__ import annotations

from types import TracebackType
from typing import Any

import httpx

DEFAULT_TIMEOUT = 10.0


class ApiError(Exception):
    """The API answered with an error, or could not be reached; the message says which."""


def _detail(response: httpx.Response) -> str:
    """The API's `detail` (a string, or FastAPI's list of field errors) as one line."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else body
    if isinstance(detail, list):
        return "; ".join(
            f"{'.'.join(str(p) for p in err.get('loc', []))}: {err.get('msg', '')}"
            if isinstance(err, dict)
            else str(err)
            for err in detail
        )
    return str(detail)


def _query(**params: Any) -> dict[str, Any]:
    """Query parameters without the ones not given."""
    return {k: v for k, v in params.items() if v is not None}


class Api:
    """The job API at `url`, with the bearer token when one is given."""

    def __init__(self, url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT):
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def __enter__(self) -> Api:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """The decoded JSON answer; ApiError on a transport error or a non-2xx status."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ApiError(f"cannot reach the API at {self.url}: {exc}") from exc
        if response.status_code == 401:
            raise ApiError("401 unauthorized: pass the API token (--token or JOBQUEUE_TOKEN)")
        if response.is_error:
            raise ApiError(f"{response.status_code} {method} {path}: {_detail(response)}")
        return response.json() if response.content else None

    # --- jobs
    def enqueue(self, job: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/jobs", json=job)
        return result

    def get(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/jobs/{job_id}")
        return result

    def jobs(self, **params: Any) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/jobs", params=_query(**params))
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/jobs/{job_id}/cancel")
        return result

    # --- dead-letter queue
    def dead(self, offset: int, limit: int, queue: str | None = None) -> dict[str, Any]:
        params = _query(offset=offset, limit=limit, queue=queue)
        result: dict[str, Any] = self.request("GET", "/dlq", params=params)
        return result

    def retry_dead(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", f"/dlq/{job_id}/retry")
        return result

    def retry_all_dead(self, queue: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("POST", "/dlq:retry-all", params=_query(queue=queue))
        return result

    def delete_dead(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", f"/dlq/{job_id}")
        return result

    def purge_dead(self, queue: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self.request("DELETE", "/dlq", params=_query(queue=queue))
        return result

    # --- queues and workers
    def queues(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/queues")["queues"]
        return result

    def workers(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self.request("GET", "/workers")["workers"]
        return result

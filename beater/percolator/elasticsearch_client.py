"""Plain REST to one Elasticsearch or OpenSearch cluster: JSON requests with retries, back-off and
node failover, on the Twisted reactor (treq), never a blocking call.

Connection errors, timeouts, 429 and 5xx answers are retried with exponential back-off; after
the last retry the call fails with BackendUnavailable, and :attr:`ElasticsearchClient.healthy` is
False until a request succeeds.  With several node URLs a failed attempt goes on to the next node
at once, and the back-off starts only once every node has failed in a row; the node that answered
is kept.  A search that some shards did not answer (a node died under it) is retried, never taken
with fewer hits.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Union

import treq
from twisted.internet import task
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web.client import HTTPConnectionPool

from beater.errors import BackendUnavailable

log = Logger()


def node_urls(url: str) -> List[str]:
    """The node URLs of ``--es-url``: one, or several comma-separated (the same cluster, tried in turn)."""
    urls = [part.strip().rstrip("/") for part in url.split(",") if part.strip()]
    if not urls:
        raise ValueError(f"no Elasticsearch URL in {url!r}")
    return urls


# Refusals that say "not now" rather than "never": the index is being closed and reopened (the
# OpenSearch repair of elasticsearch.py, by this Beater or another), so the request is retried like a 503.
RETRYABLE_ERRORS = frozenset({"index_closed_exception"})


def failed_shards(payload: Any) -> Optional[str]:
    """Why a search answered for only some of its shards (a node died mid-search), None if all answered.

    Such an answer is 200 with fewer hits: taken as it is, matches would be lost, so it is retried."""
    shards = payload.get("_shards") if isinstance(payload, dict) else None
    if not isinstance(shards, dict) or not shards.get("failed"):
        return None
    failures = shards.get("failures") or [{}]
    reason = (failures[0].get("reason") or {}) if isinstance(failures[0], dict) else {}
    detail = reason.get("reason") or reason.get("type") or "unknown reason" if isinstance(reason, dict) else str(reason)
    return f"{shards['failed']} of {shards.get('total', '?')} shards failed ({detail})"


class ElasticsearchError(Exception):
    """Elasticsearch answered with an error status."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"Elasticsearch answered {status}: {json.dumps(body)[:500]}")
        self.status = status
        self.body = body

    @property
    def error_type(self) -> str:
        """The top-level error type (``index_not_found_exception``, ...)."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        return str(error.get("type", "")) if isinstance(error, dict) else ""

    @property
    def reason(self) -> str:
        """What Elasticsearch said, from the outer reason to the innermost cause."""
        error = self.body.get("error") if isinstance(self.body, dict) else None
        if not isinstance(error, dict):
            return str(error or self.body)
        reasons: List[str] = []
        cause: Any = error
        while isinstance(cause, dict):
            reason = cause.get("reason")
            if reason and reason not in reasons and not any(str(reason) in r for r in reasons):
                reasons.append(str(reason))
            cause = cause.get("caused_by")
        return ": ".join(reasons) or str(error)


class ElasticsearchClient:
    """JSON over HTTP to the nodes of one cluster, retried as the module says."""

    def __init__(self, url: str, reactor: Any, retries: int = 5, backoff: float = 0.2, timeout: float = 20.0,
                 deadline: float = 30.0) -> None:
        """``url``: one node's URL or several, comma-separated (nodes of one cluster: a request that
        cannot reach one goes on to the next at once).  ``retries`` with exponential ``backoff``
        (capped at 5 s) once every node failed, each request ``timeout`` seconds, no new attempt once
        ``deadline`` seconds have passed since the first one."""
        self.urls = node_urls(url)
        self.url = self.urls[0]  # the node requests go to now; the next one after it fails
        self.reactor = reactor
        self.retries = retries
        self.backoff = backoff
        self.timeout = timeout
        self.deadline = deadline
        self.healthy = False
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.pool.maxPersistentPerHost = 8

    async def request(
        self, method: str, path: str, body: Any = None, ok_missing: bool = False, ndjson: Optional[bytes] = None
    ) -> Any:
        """One JSON request with retries and back-off on connection failures, 429 and 5xx answers (and a
        search some shards did not answer); each failure moves on to the next node URL, and only once
        every node has failed in a row is there a back-off."""
        if ndjson is not None:
            data: Optional[bytes] = ndjson
            content_type = b"application/x-ndjson"
        else:
            data = None if body is None else json.dumps(body).encode()
            content_type = b"application/json"
        delay = self.backoff
        give_up = self.reactor.seconds() + self.deadline
        attempt = failed_in_a_row = 0
        while True:
            url = self.url
            # treq's parameter is invariant in its key and value types: this dict must say it holds what it allows
            headers: Dict[Union[bytes, str], List[Union[bytes, str]]] = {b"Content-Type": [content_type], b"Accept": [b"application/json"]}
            try:
                response = await treq.request(
                    method,
                    url + path,
                    data=data,
                    headers=headers,
                    timeout=self.timeout,
                    reactor=self.reactor,
                    pool=self.pool,
                )
                content = await response.content()
                try:
                    payload = json.loads(content) if content else None
                except ValueError:
                    payload = {"error": content[:500].decode("utf-8", "replace")}
                if response.code == 404 and ok_missing:
                    self.healthy = True
                    return None
                if response.code >= 500 or response.code == 429:
                    raise ElasticsearchError(response.code, payload)
                if response.code < 400 and "/_search" in path and failed_shards(payload):
                    raise ElasticsearchError(503, {"error": {"type": "shard_failures", "reason": failed_shards(payload)}})
                error = ElasticsearchError(response.code, payload)
                if response.code >= 400 and error.error_type in RETRYABLE_ERRORS:
                    raise ElasticsearchError(503, payload)
                self.healthy = True
                if response.code >= 400:
                    raise error
                return payload
            except ElasticsearchError as e:
                if e.status < 500 and e.status != 429:
                    raise
                failure: Exception = e
            except Exception as e:  # connection refused, timeout, DNS
                failure = e
            failed_in_a_row += 1
            if len(self.urls) > 1:
                self.url = self.urls[(self.urls.index(url) + 1) % len(self.urls)] if url in self.urls else self.urls[0]
                if failed_in_a_row % len(self.urls):  # a node not tried since the last success: at once
                    log.warn(
                        "Elasticsearch request {method} {path} failed at {url} ({failure}); trying {next}",
                        method=method, path=path, url=url, failure=failure, next=self.url,
                    )
                    continue
            self.healthy = False
            if attempt == self.retries or self.reactor.seconds() + delay > give_up:
                where = url if len(self.urls) == 1 else ", ".join(self.urls)
                raise BackendUnavailable(f"Elasticsearch at {where} is unavailable: {failure}")
            log.warn(
                "Elasticsearch request {method} {path} failed ({failure}); retrying in {delay:.1f} s",
                method=method, path=path, failure=failure, delay=delay,
            )
            await task.deferLater(self.reactor, delay, lambda: None)
            delay = min(delay * 2, 5.0)
            attempt += 1

    def close(self) -> "Deferred[None]":
        """Close the kept-alive connections (a Deferred that fires once they are closed)."""
        return self.pool.closeCachedConnections()

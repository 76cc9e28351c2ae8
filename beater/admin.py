"""The Beater's admin API: which registrations it matches, what each costs, and deleting one.

- ``GET /api/v0.1/admin/registrations[?i=<index>][&limit=<n>]``: the registrations this Beater
  tracks, busiest first (hits per minute, then last hit), at most ``limit`` (default 100, at most
  1000), as ``{"registrations": [...], "count", "total", "grace_s"}``;
- ``GET /api/v0.1/admin/registrations/<id>``: one of them (404 if unknown);
- ``DELETE /api/v0.1/admin/registrations/<id>``: remove it now (for the whole group with Kafka);
  200 ``{"id", "index", "deleted": true}`` or 404.

Each registration: ``id``, ``index``, ``query`` (the canonical form), ``persist``,
``subscribers`` (sessions subscribed to its topic, from the router's meta API),
``last_subscriber_at``, ``last_hit_at``, ``created_at`` (Unix seconds or null),
``hits_per_minute`` and ``expires_in_s`` (null when it cannot expire now).

Who may call it: with an admin token configured (``$ESTROM_ADMIN_TOKEN`` or the tokens file),
only a request with ``Authorization: Bearer <admin token>``.  With none configured, only loopback
clients (anyone else gets 403 saying so): an operator on the machine can always look, and
listening beyond loopback never opens the admin API by accident.  A reverse proxy on the same
machine makes every client loopback: configure a token then.
"""

from __future__ import annotations

import heapq
from typing import Any, Callable, Dict, List, Optional, cast

from twisted.internet.defer import ensureDeferred
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from beater.errors import EstromError, UnknownSubscription
from beater.lifecycle import Lifecycle
from beater.listeners import Listeners
from beater.service import Beater
from estrom import auth
from estrom.web import error_body, refuse_method, write_json
from router import contract

log = Logger()

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def allowed(request: Request, tokens: auth.Tokens) -> bool:
    """True if ``request`` may use the admin API; else False after answering 401/403."""
    if tokens.configured(auth.SCOPE_ADMIN):
        return auth.require(request, tokens, auth.SCOPE_ADMIN)
    client = request.getClientAddress()
    host = getattr(client, "host", None)
    if isinstance(host, str) and auth.is_loopback(host):
        return True
    write_json(request, 403, error_body(
        contract.ERROR_FORBIDDEN, "no admin token is configured ($ESTROM_ADMIN_TOKEN or --tokens-file): "
        "the admin API answers loopback clients only", part="authorization", scope=auth.SCOPE_ADMIN))
    return False


def expires_in(lifecycle: Lifecycle, subscription_id: str, in_use: bool) -> Optional[float]:
    """Seconds until the registration expires if nobody subscribes (None: it cannot expire now)."""
    entry = lifecycle.tracked.get(subscription_id)
    if entry is None or entry.persist or in_use or not lifecycle.enabled:
        return None
    return max(0.0, entry.quiet_since + lifecycle.grace_s - lifecycle.clock())


class AdminResource(Resource):
    """``/api/v0.1/admin/registrations[/<id>]`` (see the module docstring)."""

    isLeaf = True

    def __init__(self, beater: Beater, listeners: Listeners, session: Callable[[], Any], tokens: auth.Tokens) -> None:
        """``session()`` is the router session (None while away): subscriber counts come from it."""
        super().__init__()
        self.beater = beater
        self.listeners = listeners
        self.session = session
        self.tokens = tokens

    def render(self, request: Request) -> Any:
        """Check who asks, then dispatch on the method and the path."""
        if not allowed(request, self.tokens):
            return NOT_DONE_YET
        path = [p.decode("utf-8", "replace") for p in cast(List[bytes], request.postpath)]  # set by traversal
        method = request.method
        if path == ["registrations"] and method == b"GET":
            ensureDeferred(self._answer(request, self._list(request)))
        elif len(path) == 2 and path[0] == "registrations" and path[1] and method in (b"GET", b"DELETE"):
            work = self._one(path[1]) if method == b"GET" else self.beater.delete(path[1])
            ensureDeferred(self._answer(request, work))
        elif path[:1] == ["registrations"] and len(path) <= 2:
            allowed_methods = [b"GET"] if len(path) == 1 else [b"GET", b"DELETE"]
            body = refuse_method(request, allowed_methods, "use GET on /registrations, GET or DELETE on /registrations/<id>")
            request.write(body)
            request.finish()
        else:
            write_json(request, 404, error_body("estrom.error.not_found", "admin endpoints: /api/v0.1/admin/registrations[/<id>]",
                                                part=request.uri.decode("utf-8", "replace")))
        return NOT_DONE_YET

    async def _answer(self, request: Request, work: Any) -> None:
        try:
            body = await work
        except EstromError as e:
            write_json(request, e.http_status, e.to_json())
            return
        except Exception:
            log.failure("admin request {uri} failed", uri=request.uri)
            write_json(request, 503, error_body(contract.ERROR_UNAVAILABLE, "the percolator or the registrations log did not answer; retry"))
            return
        write_json(request, 200, body)

    async def _list(self, request: Request) -> Dict[str, Any]:
        index = _arg(request, "i")
        limit = _limit(_arg(request, "limit"))
        lifecycle = self.beater.lifecycle
        hits = lifecycle.hits
        ids = [i for i, entry in lifecycle.tracked.items() if index is None or entry.index == index]
        busiest = heapq.nsmallest(limit, ids, key=lambda i: (-hits.per_minute(i), -(hits.last_hit(i) or 0.0), i))
        counts = await self._subscribers(busiest)
        items = [item for item in [await self._item(i, counts.get(i, 0)) for i in busiest] if item is not None]
        return {"registrations": items, "count": len(items), "total": len(ids), "grace_s": lifecycle.grace_s}

    async def _one(self, subscription_id: str) -> Dict[str, Any]:
        counts = await self._subscribers([subscription_id])
        item = await self._item(subscription_id, counts.get(subscription_id, 0))
        if item is None:
            raise UnknownSubscription(self.beater._unknown_message(subscription_id), part=subscription_id)
        return item

    async def _subscribers(self, ids: List[str]) -> Dict[str, int]:
        """Sessions subscribed to each id's topic: the router's count, else (router away) one per subscription."""
        routed = self.listeners.router_subscriptions()
        session = self.session()
        counts: Dict[str, int] = {}
        for subscription_id in ids:
            total = 0
            for router_id in routed.get(subscription_id, []):
                try:
                    total += int(await session.call(contract.META_SUBSCRIPTION_COUNT_SUBSCRIBERS, router_id)) if session else 1
                except Exception:
                    total += 1  # it has at least the one the router told us of
            counts[subscription_id] = total
        return counts

    async def _item(self, subscription_id: str, subscribers: int) -> Optional[Dict[str, Any]]:
        registration = await self.beater.percolator.lookup(subscription_id)
        lifecycle = self.beater.lifecycle
        entry = lifecycle.tracked.get(subscription_id)
        if registration is None:
            return None
        in_use = lifecycle.in_use(subscription_id)
        last_subscriber = lifecycle.wall() if subscribers else (entry.last_subscriber_at if entry else None)
        data = registration.to_json()
        return {
            "id": registration.id,
            "index": registration.index,
            "query": data["canonical"],
            "persist": registration.persist or bool(entry and entry.persist),
            "subscribers": subscribers,
            "last_subscriber_at": last_subscriber,
            "last_hit_at": lifecycle.hits.last_hit(subscription_id),
            "hits_per_minute": round(lifecycle.hits.per_minute(subscription_id), 3),
            "created_at": registration.created_at or (entry.created_at if entry else None),
            "expires_in_s": expires_in(lifecycle, subscription_id, in_use),
        }


def _arg(request: Request, name: str) -> Optional[str]:
    args: Dict[bytes, List[bytes]] = request.args or {}
    values = args.get(name.encode())
    return values[-1].decode("utf-8", "replace") if values else None


def _limit(value: Optional[str]) -> int:
    if value is None:
        return DEFAULT_LIMIT
    try:
        limit = int(value)
    except ValueError:
        limit = 0
    if limit < 1:
        raise EstromError(f"limit must be an integer from 1 to {MAX_LIMIT}", part=f"limit={value}")
    return min(limit, MAX_LIMIT)

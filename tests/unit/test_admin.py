"""The Beater's admin API: who may call it, what it lists about each registration, and deleting one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.defer import ensureDeferred, succeed
from twisted.web.test.requesthelper import DummyRequest

from beater.admin import AdminResource
from beater.lifecycle import Lifecycle
from beater.listeners import Listeners
from beater.percolator.embedded import EmbeddedPercolator
from beater.service import Beater
from estrom.auth import Tokens
from tests.unit.deferreds import result

TOKEN = "admin-token-0123456789"
GRACE = 100.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


class Session:
    """The router session's subscriber count, per router subscription id."""

    def __init__(self, counts: Dict[Any, int]) -> None:
        self.counts = counts

    def call(self, procedure: str, router_id: Any) -> Any:
        assert procedure == "wamp.subscription.count_subscribers"
        return succeed(self.counts[router_id])


class Admin:
    def __init__(self, tmp_path: Path, tokens: Optional[Tokens] = None, session: Any = None) -> None:
        self.clock = Clock()
        self.beater = Beater(EmbeddedPercolator(tmp_path / "registrations.sqlite3"), pipeline=None)  # type: ignore[arg-type]
        self.beater.lifecycle = Lifecycle(GRACE, clock=self.clock, wall=self.clock)
        result(self.beater.percolator.start())
        self.listeners = Listeners(self.clock, on_heard=self.beater.lifecycle.touch, on_left=self.beater.lifecycle.touch)
        self.listeners.known = True
        self.beater.lifecycle.in_use = lambda i: self.listeners.subscribed(i) or self.listeners.expecting(i)
        self.resource = AdminResource(self.beater, self.listeners, lambda: session, tokens or Tokens())

    def register(self, index: str, query: str, **kw: Any) -> str:
        return result(ensureDeferred(self.beater.register(index, query, **kw)))["id"]

    def request(self, method: bytes, path: List[bytes], args: Optional[Dict[bytes, List[bytes]]] = None,
                host: str = "127.0.0.1", token: Optional[str] = None) -> Tuple[int, Dict[str, Any]]:
        request = DummyRequest(path)
        request.method = method
        request.args = args or {}
        request.client = IPv4Address("TCP", host, 40000)
        request._disconnected = False  # type: ignore[attr-defined]
        if token is not None:
            request.requestHeaders.setRawHeaders(b"authorization", [f"Bearer {token}".encode()])
        self.resource.render(request)
        assert request.finished, "the admin API answered asynchronously beyond the already fired backend"
        return request.responseCode or 200, json.loads(b"".join(request.written))


LIST = [b"registrations"]


def test_without_an_admin_token_loopback_clients_may_list(tmp_path: Path) -> None:
    admin = Admin(tmp_path)
    admin.register("events", "hello")
    status, body = admin.request(b"GET", LIST)
    assert status == 200 and body["count"] == 1 and body["total"] == 1


def test_without_an_admin_token_other_clients_are_refused_and_told_why(tmp_path: Path) -> None:
    status, body = Admin(tmp_path).request(b"GET", LIST, host="10.1.2.3")
    assert status == 403 and "loopback clients only" in body["message"] and body["error"] == "estrom.error.forbidden"


def test_with_an_admin_token_a_request_without_it_is_unauthorized(tmp_path: Path) -> None:
    status, body = Admin(tmp_path, Tokens({"admin": [TOKEN]})).request(b"GET", LIST)
    assert status == 401 and body["error"] == "estrom.error.unauthorized"


def test_with_an_admin_token_another_token_is_forbidden(tmp_path: Path) -> None:
    status, _ = Admin(tmp_path, Tokens({"admin": [TOKEN]})).request(b"GET", LIST, token="not-the-admin-token-at-all")
    assert status == 403


def test_with_an_admin_token_it_opens_the_api_from_anywhere(tmp_path: Path) -> None:
    status, _ = Admin(tmp_path, Tokens({"admin": [TOKEN]})).request(b"GET", LIST, host="10.1.2.3", token=TOKEN)
    assert status == 200


def test_a_listed_registration_says_what_it_is_and_what_it_costs(tmp_path: Path) -> None:
    admin = Admin(tmp_path, session=Session({7: 3}))
    sub_id = admin.register("events", "Hello", persist=True)
    admin.listeners.created({"id": 7, "uri": f"docs-for-{sub_id}", "match": "exact"})
    admin.beater.lifecycle.hits.hit(sub_id, 12)
    _, body = admin.request(b"GET", LIST)
    [item] = body["registrations"]
    assert item["id"] == sub_id and item["index"] == "events" and item["persist"] is True
    assert item["query"] == result(admin.beater.percolator.lookup(sub_id)).to_json()["canonical"]
    assert item["subscribers"] == 3 and item["last_subscriber_at"] == admin.clock.now
    assert item["last_hit_at"] == admin.clock.now and item["hits_per_minute"] > 0
    assert item["created_at"] == admin.clock.now and item["expires_in_s"] is None
    assert body["grace_s"] == GRACE


def test_an_unsubscribed_registration_shows_when_it_will_expire(tmp_path: Path) -> None:
    admin = Admin(tmp_path)
    sub_id = admin.register("events", "hello")
    admin.clock.now += 40
    [item] = admin.request(b"GET", LIST)[1]["registrations"]
    assert item["id"] == sub_id and item["subscribers"] == 0 and item["hits_per_minute"] == 0
    assert item["expires_in_s"] == pytest.approx(GRACE - 40)


def test_the_list_is_busiest_first_filtered_by_index_and_limited(tmp_path: Path) -> None:
    admin = Admin(tmp_path)
    quiet, busy, other = admin.register("events", "a"), admin.register("events", "b"), admin.register("logs", "c")
    admin.beater.lifecycle.hits.hit(busy, 100)
    admin.beater.lifecycle.hits.hit(other, 1000)
    _, body = admin.request(b"GET", LIST, {b"i": [b"events"]})
    assert [r["id"] for r in body["registrations"]] == [busy, quiet]
    _, body = admin.request(b"GET", LIST, {b"limit": [b"1"]})
    assert [r["id"] for r in body["registrations"]] == [other] and body["total"] == 3


def test_a_bad_limit_is_a_400_naming_it(tmp_path: Path) -> None:
    status, body = Admin(tmp_path).request(b"GET", LIST, {b"limit": [b"none"]})
    assert status == 400 and body["part"] == "limit=none"


def test_one_registration_can_be_read_by_id(tmp_path: Path) -> None:
    admin = Admin(tmp_path)
    sub_id = admin.register("events", "hello")
    status, body = admin.request(b"GET", [b"registrations", sub_id.encode()])
    assert status == 200 and body["id"] == sub_id


def test_deleting_a_registration_removes_it_everywhere_here(tmp_path: Path) -> None:
    admin = Admin(tmp_path)
    sub_id = admin.register("events", "hello")
    status, body = admin.request(b"DELETE", [b"registrations", sub_id.encode()])
    assert status == 200 and body == {"id": sub_id, "index": "events", "deleted": True}
    assert result(admin.beater.percolator.percolate("events", [{"m": "hello"}])) == [[]]
    assert admin.request(b"GET", LIST)[1]["total"] == 0
    status, body = admin.request(b"GET", [b"registrations", sub_id.encode()])
    assert status == 404 and "deleted by an administrator" in body["message"]


def test_deleting_an_unknown_id_is_a_404(tmp_path: Path) -> None:
    status, body = Admin(tmp_path).request(b"DELETE", [b"registrations", b"0123456789abcdef"])
    assert status == 404 and body["error"] == "estrom.error.unknown_subscription"


def test_other_methods_and_paths_are_refused(tmp_path: Path) -> None:
    admin = Admin(tmp_path)
    assert admin.request(b"POST", LIST)[0] == 405
    assert admin.request(b"GET", [b"queries"])[0] == 404

"""The query lifecycle end to end: ``estrom up --registration-grace-s 2`` removes a registration
nobody subscribes to (its ``s=<id>`` tail then answers 404 saying to register again), keeps one with
a subscriber and one registered with ``persist=true``; the admin API lists and deletes them.

The embedded backend, the Elasticsearch backend (``ESTROM_ES_URL``) and a Kafka-fed Beater whose
expiries are tombstones in the registrations log (``ESTROM_KAFKA_BOOTSTRAP``) that a Beater joining
later replays.  Each waits for the registration that was quiet longest to expire, then checks the
others, registered or left before it, are still there: nothing depends on how long anything takes.
"""

from __future__ import annotations

import http.client
import json
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from tests.integration.conftest import Estrom, Tail
from tests.integration.processes import wait_for

GRACE = ["--registration-grace-s", "2"]
HEADER = b'"hits": ['
EXPIRY_WAIT_S = 90.0


def admin(instance: Estrom, method: str, path: str = "", token: Optional[str] = None) -> Tuple[int, Any]:
    """Call the Beater's admin API from loopback; return status and JSON body."""
    conn = http.client.HTTPConnection("127.0.0.1", instance.beater_port, timeout=30)
    headers = {"authorization": f"Bearer {token}"} if token else {}
    conn.request(method, "/api/v0.1/admin/registrations" + path, headers=headers)
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


def register(instance: Estrom, index: str, query: str, persist: bool = False) -> str:
    """``estrom.register`` over WAMP (persist as the fourth argument); the subscription id."""
    args = [index, query, "or", True] if persist else [index, query]
    [answer] = instance.wamp("call", "estrom.register", json.dumps(args))
    assert "result" in answer, answer
    assert answer["result"]["persist"] is persist
    return str(answer["result"]["id"])


def open_tail(instance: Estrom, **params: Any) -> Tuple[Tail, str]:
    """An HTTP tail that has subscribed (its header is out), and its subscription id."""
    tail = instance.tail(**params)
    assert tail.status == 200, tail.read_all()
    tail.read_until(HEADER)
    return tail, str(tail.response.getheader("x-estrom-subscription-id"))


def expired(instance: Estrom, sub_id: str) -> None:
    """Wait until the admin API no longer knows ``sub_id``."""
    wait_for(f"registration {sub_id} expired", lambda: True if admin(instance, "GET", f"/{sub_id}")[0] == 404 else None,
             EXPIRY_WAIT_S, instance, interval=0.25)


def check_lifecycle(instance: Estrom, index: str) -> None:
    """The three registrations of the issue: subscribed, persistent, quiet; the quiet one expires alone."""
    subscribed_tail, subscribed = open_tail(instance, i=index, q="subscribed AND kept")
    persistent_tail, persistent = open_tail(instance, i=index, q="persistent AND kept", persist="true")
    persistent_tail.close()  # no subscriber from now on: only persist keeps it
    quiet = register(instance, index, "quiet AND gone")  # the last one to go quiet

    expired(instance, quiet)

    status, body = admin(instance, "GET", f"/{persistent}")
    assert status == 200 and body["persist"] is True and body["subscribers"] == 0
    status, body = admin(instance, "GET", f"/{subscribed}")
    assert status == 200 and body["persist"] is False and body["subscribers"] >= 1 and body["expires_in_s"] is None
    # A tail of the expired id is told what happened and what to do.
    gone = instance.tail(s=quiet)
    assert gone.status == 404
    answer = json.loads(gone.read_all())
    assert answer["error"] == "estrom.error.unknown_subscription"
    assert "expired" in answer["message"] and "register the query again" in answer["message"]
    # The survivor is still matched.
    status, _ = instance.post(index, {"message": "subscribed and kept", "quiet": "gone"})
    assert status == 200
    subscribed_tail.read_until(b"subscribed and kept")
    subscribed_tail.close()
    # Registering the expired query again brings it back under the same id.
    assert register(instance, index, "quiet AND gone") == quiet
    assert admin(instance, "GET", f"/{quiet}")[0] == 200


def check_admin_delete(instance: Estrom, index: str) -> None:
    """Listed with what it costs, then deleted: its tail answers 404 saying an administrator deleted it."""
    sub_id = register(instance, index, "deleted AND soon", persist=True)
    status, body = admin(instance, "GET", f"?i={index}")
    assert status == 200
    [item] = [r for r in body["registrations"] if r["id"] == sub_id]
    assert item["index"] == index and item["persist"] is True and item["created_at"] > 0
    assert set(item) >= {"query", "subscribers", "last_subscriber_at", "last_hit_at", "hits_per_minute"}
    assert admin(instance, "DELETE", f"/{sub_id}") == (200, {"id": sub_id, "index": index, "deleted": True})
    assert admin(instance, "DELETE", f"/{sub_id}")[0] == 404
    gone = instance.tail(s=sub_id)
    assert gone.status == 404 and "deleted by an administrator" in json.loads(gone.read_all())["message"]


# --- embedded --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    instance = Estrom(tmp_path_factory.mktemp("lifecycle"), extra_args=GRACE)
    instance.start()
    yield instance
    instance.stop()


def test_a_registration_without_subscribers_expires_and_the_others_stay(embedded: Estrom) -> None:
    check_lifecycle(embedded, "events")


def test_the_admin_api_lists_and_deletes_registrations(embedded: Estrom) -> None:
    check_admin_delete(embedded, "events")


def test_an_expired_registration_does_not_come_back_after_a_restart(tmp_path: Path) -> None:
    instance = Estrom(tmp_path, extra_args=GRACE)
    instance.start()
    try:
        sub_id = register(instance, "events", "restart AND gone")
        expired(instance, sub_id)
    finally:
        instance.stop()
    instance = Estrom(tmp_path, extra_args=GRACE)
    instance.start()
    try:
        assert admin(instance, "GET", f"/{sub_id}")[0] == 404
    finally:
        instance.stop()


def test_with_an_admin_token_the_admin_api_needs_it(tmp_path: Path) -> None:
    token = "admin-" + uuid.uuid4().hex
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"admin": [token]}))
    instance = Estrom(tmp_path / "data", extra_args=["--tokens-file", str(tokens)])
    instance.start()
    try:
        status, body = admin(instance, "GET")
        assert status == 401 and body["error"] == "estrom.error.unauthorized"
        assert admin(instance, "GET", token="admin-not-the-right-one-0000")[0] == 403
        assert admin(instance, "GET", token=token)[0] == 200
    finally:
        instance.stop()


# --- Elasticsearch -------------------------------------------------------------------------------


def test_with_elasticsearch_a_quiet_registration_expires_and_an_admin_delete_removes_it(tmp_path: Path) -> None:
    from tests.integration.test_elasticsearch_backend import es_delete_index, es_url

    url = es_url()
    index = "lifecycle-" + uuid.uuid4().hex[:8]
    instance = Estrom(tmp_path, extra_args=GRACE + ["--percolator", "elasticsearch", "--es-url", url])
    instance.start()
    try:
        check_lifecycle(instance, index)
        check_admin_delete(instance, index)
    finally:
        instance.stop()
        es_delete_index("estrom-queries-" + index)


# --- Kafka: the registrations log ----------------------------------------------------------------


def test_with_kafka_an_expiry_is_a_tombstone_a_joining_beater_honours(tmp_path: Path) -> None:
    from tests.integration.processes import metric
    from tests.integration.test_kafka_ingest import bootstrap, create_topics

    address = bootstrap()
    unique = uuid.uuid4().hex[:10]
    topic = f"estrom-it-{unique}"
    create_topics(address, topic)
    kafka: Dict[str, str] = {"--kafka-bootstrap": address, "--kafka-topics": topic, "--kafka-group": f"estrom-it-{unique}",
                             "--kafka-index-map": f"{topic}=events", "--kafka-registrations-topic": f"{topic}-registrations"}
    args = GRACE + [part for pair in kafka.items() for part in pair]
    first = Estrom(tmp_path / "first", extra_args=args)
    first.start()
    try:
        persistent = register(first, "events", "logged AND kept", persist=True)
        quiet = register(first, "events", "logged AND gone")
        expired(first, quiet)  # removed here only once its tombstone was read back from the log
        assert admin(first, "GET", f"/{persistent}")[0] == 200
    finally:
        first.stop()
    # A Beater with no registrations of its own replays the log: the tombstone wins over the entry before it.
    second = Estrom(tmp_path / "second", extra_args=args)
    second.start()
    try:
        # Three records (two registrations, one tombstone), each applied before the read offset passes it.
        wait_for("the registrations log replayed", lambda: True if metric(second.beater_port, "estrom_kafka_registrations_read_offset") >= 3
                 else None, 60, second, interval=0.25)
        assert metric(second.beater_port, "estrom_kafka_registrations_tombstones_total") >= 1
        status, body = admin(second, "GET", f"/{persistent}")
        assert status == 200 and body["persist"] is True
        assert admin(second, "GET", f"/{quiet}")[0] == 404
    finally:
        second.stop()

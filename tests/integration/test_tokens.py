"""Tokens and CORS through a real ``estrom up``: a Beater on every interface guarded by ingest tokens.

The instance of this module listens beyond loopback (``--beater-host 0.0.0.0``)
with a tokens file holding two ingest tokens (one being rotated in) and a tail
token, and allows one browser origin.  Clients are real: ``http.client`` for
HTTP, ``wampcli.py`` for WAMP with an ingest token as its ticket.
"""

from __future__ import annotations

import http.client
import json
import secrets
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple

import pytest

from tests.integration.conftest import ROOT, Estrom, estrom_executable, free_port, settings_free_environment

INGEST = secrets.token_urlsafe(32)
INGEST_ROTATED = secrets.token_urlsafe(32)
TAIL = secrets.token_urlsafe(32)
ORIGIN = "https://page.example"
TOKENS = (INGEST, INGEST_ROTATED, TAIL)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    """``estrom up`` with its Beater on 0.0.0.0, ingest and tail tokens from a file, one CORS origin."""
    data_dir = tmp_path_factory.mktemp("estrom-tokens")
    tokens_file = data_dir.parent / (data_dir.name + "-tokens.json")
    tokens_file.write_text(json.dumps({"ingest": [INGEST, INGEST_ROTATED], "tail": [TAIL]}))
    instance = Estrom(data_dir, ["--beater-host", "0.0.0.0", "--tokens-file", str(tokens_file), "--cors-origins", ORIGIN])
    instance.start()
    yield instance
    instance.stop()


def request(port: int, method: str, path: str, body: Optional[Any] = None, headers: Optional[Dict[str, str]] = None,
            read: bool = True) -> Tuple[int, Dict[str, str], Any]:
    """One HTTP request; status, lower-cased headers and the JSON body (None if empty or not read)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=None if body is None else json.dumps(body), headers=headers or {})
    response = conn.getresponse()
    data = response.read() if read else b""
    conn.close()
    return response.status, {k.lower(): v for k, v in response.getheaders()}, json.loads(data) if data else None


def bearer(token: str) -> Dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def ingest(estrom: Estrom, headers: Optional[Dict[str, str]] = None, doc: Optional[Dict[str, Any]] = None) -> Tuple[int, Dict[str, str], Any]:
    return request(estrom.beater_port, "POST", "/api/v0.1/beat/events", doc or {"message": "hello"},
                   {"content-type": "application/json", **(headers or {})})


# --- HTTP ingest ----------------------------------------------------------------------------------------------------


def test_ingest_without_a_token_is_401_and_ingests_nothing(guarded: Estrom) -> None:
    """No Authorization: 401 with WWW-Authenticate: Bearer and a JSON body naming the ingest scope."""
    status, headers, body = ingest(guarded)
    assert status == 401
    assert headers["www-authenticate"].startswith("Bearer")
    assert body["error"] == "estrom.error.unauthorized" and body["scope"] == "ingest"


def test_ingest_with_a_wrong_token_is_403(guarded: Estrom) -> None:
    """Another scope's token (the tail token) does not open ingest, and the answer does not repeat it."""
    status, _, body = ingest(guarded, bearer(TAIL))
    assert status == 403 and body["error"] == "estrom.error.forbidden" and body["scope"] == "ingest"
    assert TAIL not in json.dumps(body)


def test_ingest_with_either_ingest_token_is_accepted(guarded: Estrom) -> None:
    """Both tokens of the ingest scope work while one is rotated in."""
    for token in (INGEST, INGEST_ROTATED):
        status, _, body = ingest(guarded, bearer(token))
        assert status == 200 and body["accepted"] == 1


def test_the_beaters_health_and_metrics_need_no_token(guarded: Estrom) -> None:
    """Supervisors and Prometheus scrape without a token."""
    assert request(guarded.beater_port, "GET", "/api/v0.1/health")[0] == 200
    conn = http.client.HTTPConnection("127.0.0.1", guarded.beater_port, timeout=30)
    conn.request("GET", "/metrics")
    assert conn.getresponse().status == 200
    conn.close()


# --- tails ----------------------------------------------------------------------------------------------------------


def test_a_tail_without_the_tail_token_is_401(guarded: Estrom) -> None:
    """With a tail token configured, a tail needs it."""
    status, headers, body = request(guarded.tailor_port, "GET", "/api/v0.1/docs?i=events&q=hello&limit=1")
    assert status == 401 and body["scope"] == "tail" and headers["www-authenticate"].startswith("Bearer")


def test_the_tailors_health_needs_no_token(guarded: Estrom) -> None:
    """The Tailor's health check stays open."""
    assert request(guarded.tailor_port, "GET", "/api/v0.1/health")[0] == 200


def open_tail(estrom: Estrom, path: str, headers: Optional[Dict[str, str]] = None) -> Tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
    conn = http.client.HTTPConnection("127.0.0.1", estrom.tailor_port, timeout=30)
    conn.request("GET", path, headers=headers or {})
    return conn, conn.getresponse()


def read_until(response: http.client.HTTPResponse, needle: bytes) -> bytes:
    received = b""
    while needle not in received:
        chunk = response.read1(65536)
        if not chunk:
            break
        received += chunk
    return received


def test_a_tail_with_the_bearer_token_receives_what_is_ingested_with_an_ingest_token(guarded: Estrom) -> None:
    """End to end with tokens on both sides: the tail opens with the tail token and gets the ingested document."""
    conn, response = open_tail(guarded, "/api/v0.1/docs?i=events&q=bearer%20AND%20tail", bearer(TAIL))
    assert response.status == 200
    read_until(response, b'"hits": [')
    assert ingest(guarded, bearer(INGEST), {"message": "bearer tail"})[2]["deliveries"] >= 1
    assert b"bearer tail" in read_until(response, b"bearer tail")
    conn.close()


def test_an_eventsource_tail_may_send_the_token_as_access_token(guarded: Estrom) -> None:
    """SSE with ?access_token= (a browser EventSource sets no headers) opens and streams."""
    conn, response = open_tail(guarded, f"/api/v0.1/docs?i=events&q=sse%20AND%20token&format=sse&access_token={TAIL}")
    assert response.status == 200 and response.getheader("content-type", "").startswith("text/event-stream")
    response.read1(65536)
    ingest(guarded, bearer(INGEST), {"message": "sse token"})
    assert b"sse token" in read_until(response, b"sse token")
    conn.close()


# --- CORS -----------------------------------------------------------------------------------------------------------


def test_the_allowed_origin_is_echoed_on_a_tail_and_on_its_refusal(guarded: Estrom) -> None:
    """The browser page of the allowed origin can read both a tail and a 401 (to ask for a token)."""
    status, headers, _ = request(guarded.tailor_port, "GET", "/api/v0.1/docs?i=events&q=x&limit=1", headers={"Origin": ORIGIN})
    assert status == 401 and headers["access-control-allow-origin"] == ORIGIN and headers["vary"] == "Origin"
    conn, response = open_tail(guarded, "/api/v0.1/docs?i=events&q=x", {"Origin": ORIGIN, **bearer(TAIL)})
    assert response.status == 200 and response.getheader("access-control-allow-origin") == ORIGIN
    conn.close()


def test_another_origin_gets_no_allow_origin(guarded: Estrom) -> None:
    """An origin not in --cors-origins is not echoed."""
    _, headers, _ = request(guarded.tailor_port, "GET", "/api/v0.1/health", headers={"Origin": "https://other.example"})
    assert "access-control-allow-origin" not in headers


def test_a_preflight_is_answered_without_a_token(guarded: Estrom) -> None:
    """A browser's OPTIONS preflight for a tail with Authorization: 204 allowing GET and the Authorization header."""
    status, headers, _ = request(guarded.tailor_port, "OPTIONS", "/api/v0.1/docs?i=events&q=x", headers={
        "Origin": ORIGIN, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": "authorization"})
    assert status == 204
    assert headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in headers["access-control-allow-headers"].lower()


# --- WAMP ingest ----------------------------------------------------------------------------------------------------


def test_wamp_ingest_with_the_ingest_token_as_ticket(guarded: Estrom) -> None:
    """authid ``ingest`` with the first ingest token joins as role ingest and may call estrom.ingest."""
    [answer] = guarded.wamp("ingest", "ingest", INGEST, "events", json.dumps([{"message": "over wamp"}]))
    assert answer["role"] == "ingest" and answer["result"]["accepted"] == 1


def test_wamp_ingest_with_the_rotated_token_uses_its_own_authid(guarded: Estrom) -> None:
    """The second ingest token is principal ``ingest_2``."""
    [answer] = guarded.wamp("ingest", "ingest_2", INGEST_ROTATED, "events", json.dumps([{"message": "rotated"}]))
    assert answer["result"]["accepted"] == 1


def test_wamp_ingest_with_a_wrong_ticket_is_refused(guarded: Estrom) -> None:
    """A ticket that is not that principal's ingest token cannot join."""
    answers = guarded.wamp("ingest", "ingest", INGEST_ROTATED, "events", "[]")
    assert answers and "refused" in answers[0] and "result" not in answers[0]


def test_anonymous_wamp_clients_still_may_not_ingest(guarded: Estrom) -> None:
    """estrom.ingest stays closed to anonymous sessions."""
    [answer] = guarded.wamp("call", "estrom.ingest", json.dumps(["events", [{"message": "anonymous"}]]))
    assert answer["error"] == "wamp.error.not_authorized"


# --- never logged ---------------------------------------------------------------------------------------------------


def test_no_token_is_written_to_a_log_or_the_router_config(guarded: Estrom) -> None:
    """After all of the above, neither estrom's output, nor the router's log, nor its rendered config holds a token."""
    texts = {
        "estrom output": "".join(guarded.output),
        "router log": (guarded.data_dir / "router.log").read_text(errors="replace"),
        "router config": (guarded.data_dir / "crossbar" / "config.json").read_text(),
    }
    for where, text in texts.items():
        for token in TOKENS:
            assert token not in text, f"a token is in the {where}"


# --- the start-up refusal -------------------------------------------------------------------------------------------


def run_up(tmp_path: Path, *args: str, env: Optional[Dict[str, str]] = None) -> "subprocess.CompletedProcess[str]":
    """``estrom up`` with the given flags, to completion (these never get as far as starting anything)."""
    command = estrom_executable() + ["up", "--data-dir", str(tmp_path), "--router-url", f"ws://127.0.0.1:{free_port()}/ws",
                                     "--tailor-port", str(free_port()), "--beater-port", str(free_port()), *args]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=60,
                          env={**settings_free_environment(), **(env or {})})


def test_up_refuses_a_beater_on_every_interface_without_an_ingest_token(tmp_path: Path) -> None:
    """``estrom up --beater-host 0.0.0.0`` with no token exits non-zero saying how to set one."""
    env = {k: v for k, v in settings_free_environment().items() if not k.endswith("_TOKEN")}
    done = subprocess.run(
        estrom_executable() + ["up", "--data-dir", str(tmp_path), "--beater-host", "0.0.0.0", "--beater-port", str(free_port())],
        capture_output=True, text=True, cwd=ROOT, timeout=60, env=env,
    )
    assert done.returncode != 0
    assert done.stderr.startswith("estrom: ") and "ESTROM_INGEST_TOKEN" in done.stderr and "--tokens-file" in done.stderr
    assert not (tmp_path / "router.log").exists()  # refused before anything started


def test_a_too_short_ingest_token_in_the_environment_is_refused(tmp_path: Path) -> None:
    """$ESTROM_INGEST_TOKEN must be a real secret; the message names the variable and not the value."""
    done = run_up(tmp_path, "--beater-host", "0.0.0.0", env={"ESTROM_INGEST_TOKEN": "guessme"})
    assert done.returncode != 0 and "$ESTROM_INGEST_TOKEN" in done.stderr and "guessme" not in done.stderr

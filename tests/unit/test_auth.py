"""Bearer tokens per scope, the HTTP guards of the Beater and the Tailor, and the Tailor's CORS allow-list."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import globalLogPublisher
from twisted.web.resource import Resource
from twisted.web.server import Request

from estrom import auth, settings
from estrom.auth import Cors, Guard, TokenError, Tokens, load_tokens
from estrom.cli import check_ingest_protected, prepare_router
from estrom.web import json_site
from router import config as crossbar_config
from router import contract

INGEST = "ingest-token-0123456789"
INGEST_NEXT = "ingest-token-rotated-9876"
TAIL = "tail-token-abcdefghijkl"
ADMIN = "admin-token-abcdefghijk"


class Echo(Resource):
    """Stands for an API's root, which dispatches in ``getChild``: answers every path with what reached it."""

    def getChild(self, path: bytes, request: Request) -> Resource:
        return EchoLeaf()


class EchoLeaf(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        args = {k.decode(): [v.decode() for v in vs] for k, vs in request.args.items()}
        return json.dumps({"path": request.path.decode(), "uri": request.uri.decode(), "args": args}).encode()


def exchange(resource: Resource, method: str, path: str, headers: Optional[Dict[str, str]] = None) -> Tuple[int, Dict[bytes, bytes], bytes]:
    """One HTTP request through a real JSON site over an in-memory transport: status, headers, body."""
    site = json_site(resource)
    site.reactor = Clock()  # type: ignore[assignment]
    channel = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 40000))
    transport = StringTransport()
    channel.makeConnection(transport)
    lines = [f"{method} {path} HTTP/1.1", "Host: estrom.test", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    channel.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode())
    head, _, body = transport.value().partition(b"\r\n\r\n")
    status, *rest = head.split(b"\r\n")
    parsed = {k.strip().lower(): v.strip() for k, v in (line.split(b":", 1) for line in rest)}
    if parsed.get(b"transfer-encoding") == b"chunked":
        body = dechunk(body)
    return int(status.split()[1]), parsed, body


def dechunk(data: bytes) -> bytes:
    out = b""
    while data:
        size, _, data = data.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out, data = out + data[:n], data[n + 2:]
    return out


def beater(tokens: Tokens) -> Resource:
    return Guard(Echo(), tokens, auth.beater_rule)


def tailor(tokens: Tokens, origins: Tuple[str, ...] = ()) -> Resource:
    guarded = Guard(Echo(), tokens, auth.tailor_rule)
    return Cors(guarded, origins) if origins else guarded


BEARER = lambda token: {"Authorization": f"Bearer {token}"}  # noqa: E731


# --- Tokens -------------------------------------------------------------------------------------------------------


def test_an_unconfigured_scope_allows_everyone() -> None:
    """With no tail token configured, a tail needs none (and any presented one is ignored)."""
    tokens = Tokens({"ingest": [INGEST]})
    assert not tokens.configured("tail")
    assert tokens.allows("tail", None) and tokens.allows("tail", "anything")


def test_a_configured_scope_allows_only_its_tokens() -> None:
    """An ingest token opens ingest; no token, a wrong one or another scope's token does not."""
    tokens = Tokens({"ingest": [INGEST], "tail": [TAIL]})
    assert tokens.allows("ingest", INGEST)
    assert not tokens.allows("ingest", None)
    assert not tokens.allows("ingest", INGEST + "x")
    assert not tokens.allows("ingest", TAIL)


def test_every_token_of_a_scope_is_accepted_so_tokens_can_be_rotated() -> None:
    """Two ingest tokens at once: the old one keeps working until it is removed."""
    tokens = Tokens({"ingest": [INGEST, INGEST_NEXT]})
    assert tokens.allows("ingest", INGEST) and tokens.allows("ingest", INGEST_NEXT)


def test_tokens_are_compared_with_compare_digest_against_every_token(monkeypatch: pytest.MonkeyPatch) -> None:
    """The comparison is hmac.compare_digest, over every configured token even after a match (constant time)."""
    calls: List[Tuple[bytes, bytes]] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    assert Tokens({"ingest": [INGEST, INGEST_NEXT, "third-token-0123456"]}).allows("ingest", INGEST)
    assert len(calls) == 3
    assert all(len(a) == len(b) == 32 for a, b in calls)  # digests: a token's length does not show either


def test_a_token_never_shows_in_repr() -> None:
    """repr(Tokens) and repr(Settings) count tokens and never show one."""
    tokens = Tokens({"ingest": [INGEST], "tail": [TAIL]})
    assert INGEST not in repr(tokens) and TAIL not in repr(tokens)
    assert repr(tokens) == "Tokens(ingest: 1, tail: 1)"
    assert INGEST not in repr(settings.Settings(tokens=tokens))


def test_tokens_come_from_the_file_and_the_environment_together(tmp_path: Path) -> None:
    """The file's tokens and $ESTROM_<SCOPE>_TOKEN (comma-separated) add up per scope."""
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"ingest": [INGEST], "admin": ADMIN}))
    tokens = load_tokens(path, {"ESTROM_INGEST_TOKEN": INGEST_NEXT, "ESTROM_TAIL_TOKEN": f"{TAIL}, {TAIL}2"})
    assert tokens.secrets("ingest") == (INGEST, INGEST_NEXT)
    assert tokens.secrets("admin") == (ADMIN,)
    assert tokens.secrets("tail") == (TAIL, TAIL + "2")


@pytest.mark.parametrize("content, fault", [
    ("{not json", "not JSON"),
    ('["a"]', "must hold a JSON object"),
    ('{"ingets": ["%s"]}' % INGEST, "unknown scope 'ingets'"),
    ('{"ingest": 42}', "must be a token or a list"),
    ('{"ingest": ["short"]}', "at least 16 characters"),
    ('{"ingest": ["has a space in it ok"]}', "must not contain whitespace"),
])
def test_a_bad_tokens_file_is_refused_naming_the_flag_and_the_fault(tmp_path: Path, content: str, fault: str) -> None:
    """Each fault of the tokens file gets a message naming --tokens-file, the file and what is wrong."""
    path = tmp_path / "tokens.json"
    path.write_text(content)
    with pytest.raises(TokenError) as e:
        load_tokens(path, {})
    assert f"--tokens-file {path}" in str(e.value) and fault in str(e.value)


def test_a_bad_token_is_refused_without_being_shown() -> None:
    """A too short token in the environment is refused; the message names the variable, not the token."""
    with pytest.raises(TokenError) as e:
        load_tokens(None, {"ESTROM_ADMIN_TOKEN": "sekrit"})
    assert "$ESTROM_ADMIN_TOKEN" in str(e.value) and "sekrit" not in str(e.value)


def test_settings_read_the_tokens_file_flag(tmp_path: Path) -> None:
    """--tokens-file resolves into Settings.tokens; the tokens themselves are no flag (children get the path)."""
    path = tmp_path / "tokens.json"
    path.write_text(json.dumps({"ingest": [INGEST]}))
    parser = settings.argparse.ArgumentParser()
    settings.add_arguments(parser)
    s = settings.resolve(parser.parse_args(["--data-dir", str(tmp_path), "--tokens-file", str(path)]), environ={})
    assert s.tokens.allows("ingest", INGEST) and not s.tokens.allows("ingest", None)
    assert s.tokens_file == str(path)
    assert all("token" not in o.name or o.name == "tokens_file" for o in settings.OPTIONS)


# --- the start-up refusal -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_a_loopback_beater_needs_no_ingest_token(tmp_path: Path, host: str) -> None:
    """Only this machine can reach a loopback Beater: it starts without a token."""
    check_ingest_protected("up", settings.Settings(beater_host=host, data_dir=tmp_path))


@pytest.mark.parametrize("host", ["0.0.0.0", "", "::", "10.1.2.3", "beater.example"])
def test_a_beater_beyond_loopback_without_an_ingest_token_refuses_to_start(tmp_path: Path, host: str) -> None:
    """``up`` and ``beater`` exit with a message naming $ESTROM_INGEST_TOKEN and --tokens-file."""
    for command in ("up", "beater"):
        with pytest.raises(SystemExit) as e:
            check_ingest_protected(command, settings.Settings(beater_host=host, data_dir=tmp_path))
        message = str(e.value.code)
        assert message.startswith("estrom: ") and "ESTROM_INGEST_TOKEN" in message and "--tokens-file" in message


def test_a_beater_beyond_loopback_with_an_ingest_token_starts(tmp_path: Path) -> None:
    """An ingest token is all a Beater on 0.0.0.0 needs."""
    check_ingest_protected("up", settings.Settings(beater_host="0.0.0.0", tokens=Tokens({"ingest": [INGEST]})))


def test_the_explicit_opt_out_lets_an_open_beater_start(tmp_path: Path) -> None:
    """--allow-unauthenticated-ingest yes (behind an authenticating proxy) starts, with a warning."""
    check_ingest_protected("up", settings.Settings(beater_host="0.0.0.0", allow_unauthenticated_ingest=True))


def test_the_router_and_the_tailor_alone_need_no_ingest_token(tmp_path: Path) -> None:
    """Only a command that runs a Beater is refused."""
    for command in ("router", "tailor"):
        check_ingest_protected(command, settings.Settings(beater_host="0.0.0.0"))


def test_the_opt_out_takes_yes_or_no_only(tmp_path: Path) -> None:
    """A typo in the opt-out is an error, not an open Beater."""
    with pytest.raises(SystemExit) as e:
        settings.resolve(None, {"ESTROM_DATA_DIR": str(tmp_path), "ESTROM_ALLOW_UNAUTHENTICATED_INGEST": "sure"})
    assert "--allow-unauthenticated-ingest" in str(e.value.code)


# --- the WAMP ingest role -------------------------------------------------------------------------------------------


def test_each_ingest_token_becomes_an_ingest_principal_whose_ticket_stays_in_the_environment(tmp_path: Path) -> None:
    """authid ``ingest`` (then ``ingest_2`` ...) of role ingest on both listeners; the file holds only ${...} references."""
    s = settings.Settings(data_dir=tmp_path, tickets={"beater": "b" * 20, "tailor": "t" * 20},
                          tokens=Tokens({"ingest": [INGEST, INGEST_NEXT]}))
    path, tickets = prepare_router(tmp_path / "crossbar", s)
    text = path.read_text()
    assert INGEST not in text and INGEST_NEXT not in text
    transport = json.loads(text)["workers"][0]["transports"][0]
    for listener in (transport["websocket"]["ws"], transport["rawsocket"]):
        principals = listener["auth"]["ticket"]["principals"]
        assert principals["ingest"] == {"ticket": "${ESTROM_INGEST_TICKET}", "role": contract.ROLE_INGEST}
        assert principals["ingest_2"] == {"ticket": "${ESTROM_INGEST_2_TICKET}", "role": contract.ROLE_INGEST}
    assert tickets["ingest"] == INGEST and tickets["ingest_2"] == INGEST_NEXT and tickets["beater"] == "b" * 20


def test_without_ingest_tokens_there_is_no_ingest_principal() -> None:
    """No token, no principal: nobody can authenticate as the ingest role."""
    rendered = crossbar_config.render(crossbar_config.load_template(), "127.0.0.1", 8080, "ws")
    principals = rendered["workers"][0]["transports"][0]["rawsocket"]["auth"]["ticket"]["principals"]
    assert set(principals) == {"beater", "tailor"}


def test_the_ingest_role_may_call_ingest_and_nothing_else() -> None:
    """The ingest role's one permission is calling estrom.ingest."""
    granted = [(uri, match, allow) for role, uri, match, allow in crossbar_config.role_permissions(crossbar_config.load_template())
               if role == contract.ROLE_INGEST]
    assert granted == [(contract.PROC_INGEST, "exact", {"call": True, "register": False, "publish": False, "subscribe": False})]


# --- the HTTP guards ------------------------------------------------------------------------------------------------


def test_ingest_without_a_token_is_401_naming_the_scope() -> None:
    """POST /api/v0.1/beat/<index> with no token: 401, WWW-Authenticate: Bearer, a JSON body naming the scope."""
    status, headers, body = exchange(beater(Tokens({"ingest": [INGEST]})), "POST", "/api/v0.1/beat/logs")
    answer = json.loads(body)
    assert status == 401
    assert headers[b"www-authenticate"].startswith(b"Bearer ")
    assert answer["error"] == contract.ERROR_UNAUTHORIZED and answer["scope"] == "ingest" and answer["part"] == "authorization"


def test_ingest_with_a_wrong_token_is_403_and_the_token_is_not_echoed() -> None:
    """A token that is not an ingest token (here: the tail token): 403, and the answer never contains it."""
    status, _, body = exchange(beater(Tokens({"ingest": [INGEST], "tail": [TAIL]})), "POST", "/api/v0.1/beat/logs", BEARER(TAIL))
    assert status == 403
    assert json.loads(body)["error"] == contract.ERROR_FORBIDDEN and json.loads(body)["scope"] == "ingest"
    assert TAIL.encode() not in body


def test_ingest_with_the_token_reaches_the_beater() -> None:
    """The right bearer token passes through to the Beater's own resource."""
    status, _, body = exchange(beater(Tokens({"ingest": [INGEST]})), "POST", "/api/v0.1/beat/logs", BEARER(INGEST))
    assert status == 200 and json.loads(body)["path"] == "/api/v0.1/beat/logs"


def test_the_bearer_scheme_is_case_insensitive() -> None:
    """``authorization: bearer <t>`` is the same as ``Bearer`` (RFC 7235)."""
    status, _, _ = exchange(beater(Tokens({"ingest": [INGEST]})), "POST", "/api/v0.1/beat/logs", {"Authorization": f"bearer {INGEST}"})
    assert status == 200


def test_the_beaters_health_and_metrics_stay_open() -> None:
    """Supervisors and Prometheus need no token."""
    for path in ("/api/v0.1/health", "/metrics"):
        assert exchange(beater(Tokens({"ingest": [INGEST]})), "GET", path)[0] == 200


def test_a_percent_encoded_path_is_guarded_like_the_plain_one() -> None:
    """/api/v0%2E1/beat/x is the path the Beater would serve as /api/v0.1/beat/x: it needs the token too."""
    assert exchange(beater(Tokens({"ingest": [INGEST]})), "POST", "/api/v0%2E1/%62eat/logs")[0] == 401


def test_a_tail_needs_the_tail_token_once_one_is_configured() -> None:
    """With a tail token: no token 401, the token 200; the health check stays open."""
    tokens = Tokens({"tail": [TAIL]})
    assert exchange(tailor(tokens), "GET", "/api/v0.1/docs?i=logs&q=x")[0] == 401
    assert exchange(tailor(tokens), "GET", "/api/v0.1/docs?i=logs&q=x", BEARER(TAIL))[0] == 200
    assert exchange(tailor(tokens), "GET", "/api/v0.1/health")[0] == 200


def test_the_page_and_its_scripts_load_without_the_tail_token_but_its_api_calls_need_it() -> None:
    """A browser fetches /static/page.js without the ?access_token= the page was opened with: the page is code, not data."""
    tokens = Tokens({"tail": [TAIL]})
    assert exchange(tailor(tokens), "GET", "/")[0] == 200
    assert exchange(tailor(tokens), "GET", "/static/page.js")[0] == 200
    assert exchange(tailor(tokens), "GET", "/api/v0.1/counts?i=logs&q=x")[0] == 401
    assert exchange(tailor(tokens), "GET", "/metrics")[0] == 401


def test_a_tail_needs_no_token_when_none_is_configured() -> None:
    """Tail tokens are optional: without one, tails are open as before (even with an ingest token set)."""
    assert exchange(tailor(Tokens({"ingest": [INGEST]})), "GET", "/api/v0.1/docs?i=logs&q=x")[0] == 200


def test_an_eventsource_may_pass_the_tail_token_as_access_token_which_the_tail_never_sees() -> None:
    """?access_token= works where headers cannot be set; it is taken out of the arguments and of the URI."""
    status, _, body = exchange(tailor(Tokens({"tail": [TAIL]})), "GET", f"/api/v0.1/docs?i=logs&access_token={TAIL}&q=x")
    answer = json.loads(body)
    assert status == 200
    assert "access_token" not in answer["args"] and answer["args"]["i"] == ["logs"]
    assert TAIL not in answer["uri"] and "access_token=redacted" in answer["uri"]


def test_a_wrong_access_token_is_403() -> None:
    """A wrong query token is refused like a wrong header token."""
    assert exchange(tailor(Tokens({"tail": [TAIL]})), "GET", "/api/v0.1/docs?i=logs&access_token=wrong-but-long-enough")[0] == 403


def test_the_access_log_never_shows_a_query_token() -> None:
    """The access line of a refused and of an accepted request shows ``access_token=redacted``."""
    events: List[Dict[str, Any]] = []
    globalLogPublisher.addObserver(events.append)
    try:
        exchange(tailor(Tokens({"tail": [TAIL]})), "GET", f"/api/v0.1/docs?i=logs&access_token={TAIL}")
        exchange(tailor(Tokens({"tail": [TAIL]})), "GET", "/api/v0.1/docs?i=logs&access_token=wrong-but-long-enough")
    finally:
        globalLogPublisher.removeObserver(events.append)
    uris = [e["uri"] for e in events if e.get("log_namespace") == "estrom.access"]
    assert len(uris) == 2 and all("access_token=redacted" in uri for uri in uris)
    assert not any(TAIL in repr(e) or "wrong-but-long-enough" in repr(e) for e in events)


# --- CORS -----------------------------------------------------------------------------------------------------------

ORIGINS = ("https://a.example", "https://b.example")


def test_an_allowed_origin_is_echoed_with_vary_origin() -> None:
    """Access-Control-Allow-Origin names the request's origin when it is in the list; Vary: Origin always."""
    status, headers, _ = exchange(tailor(Tokens(), ORIGINS), "GET", "/api/v0.1/docs?i=logs", {"Origin": "https://b.example"})
    assert status == 200
    assert headers[b"access-control-allow-origin"] == b"https://b.example"
    assert headers[b"vary"] == b"Origin"
    assert b"x-estrom-subscription-id" in headers[b"access-control-expose-headers"].lower()


def test_an_origin_not_in_the_list_gets_no_allow_origin() -> None:
    """The browser of another origin cannot read the answer (the server still answers; CORS is the browser's)."""
    _, headers, _ = exchange(tailor(Tokens(), ORIGINS), "GET", "/api/v0.1/docs?i=logs", {"Origin": "https://evil.example"})
    assert b"access-control-allow-origin" not in headers and headers[b"vary"] == b"Origin"


def test_a_preflight_from_an_allowed_origin_is_answered_204_without_a_token() -> None:
    """OPTIONS with Access-Control-Request-Method: 204 with methods and headers (Authorization among them), no token asked."""
    status, headers, _ = exchange(tailor(Tokens({"tail": [TAIL]}), ORIGINS), "OPTIONS", "/api/v0.1/docs?i=logs",
                                  {"Origin": "https://a.example", "Access-Control-Request-Method": "GET",
                                   "Access-Control-Request-Headers": "authorization"})
    assert status == 204
    assert headers[b"access-control-allow-origin"] == b"https://a.example"
    assert b"GET" in headers[b"access-control-allow-methods"]
    assert b"authorization" in headers[b"access-control-allow-headers"].lower()


def test_a_preflight_from_another_origin_is_403_naming_the_origin() -> None:
    """A refused preflight says which origin was refused."""
    status, headers, body = exchange(tailor(Tokens(), ORIGINS), "OPTIONS", "/api/v0.1/docs",
                                     {"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert status == 403 and b"access-control-allow-origin" not in headers
    assert json.loads(body)["part"] == "origin" and json.loads(body)["origin"] == "https://evil.example"


def test_a_refused_tail_still_carries_cors_headers_so_the_page_can_read_the_401() -> None:
    """The browser page sees the 401's JSON body, not an opaque CORS failure."""
    status, headers, _ = exchange(tailor(Tokens({"tail": [TAIL]}), ORIGINS), "GET", "/api/v0.1/docs", {"Origin": "https://a.example"})
    assert status == 401 and headers[b"access-control-allow-origin"] == b"https://a.example"


def test_a_star_allows_every_origin_when_configured_explicitly() -> None:
    """``--cors-origins '*'`` answers ``Access-Control-Allow-Origin: *``."""
    _, headers, _ = exchange(tailor(Tokens(), ("*",)), "GET", "/api/v0.1/docs", {"Origin": "https://any.example"})
    assert headers[b"access-control-allow-origin"] == b"*"


def test_cors_origins_are_validated_and_normalised() -> None:
    """Origins are scheme://host[:port]; a path or a bare host is refused with the offending item named."""
    assert auth.parse_origins(" https://A.example/ ,http://b.example:8080,") == ("https://a.example", "http://b.example:8080")
    for bad in ("a.example", "https://a.example/page", "ftp://a.example"):
        with pytest.raises(ValueError, match="is not an origin"):
            auth.parse_origins(bad)


def test_a_bad_cors_origin_stops_start_up_naming_the_flag(tmp_path: Path) -> None:
    """--cors-origins with a non-origin exits with a message naming the flag."""
    with pytest.raises(SystemExit) as e:
        settings.resolve(None, {"ESTROM_DATA_DIR": str(tmp_path), "ESTROM_CORS_ORIGINS": "https://a.example/x"})
    assert "--cors-origins" in str(e.value.code)


def test_no_cors_origins_by_default(tmp_path: Path) -> None:
    """By default no origin is allowed (the Tailor adds no CORS headers)."""
    assert settings.resolve(None, {"ESTROM_DATA_DIR": str(tmp_path)}).cors_allowed == ()

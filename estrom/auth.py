"""Who may ingest, administer and tail: bearer tokens, their HTTP guards and CORS.

Tokens come per scope (``ingest``, ``admin``, ``tail``) from a JSON tokens file
and from ``ESTROM_<SCOPE>_TOKEN`` variables; a scope may hold several tokens so
that one can be rotated in before the old one is dropped.  A scope with no
token configured lets everyone in (the start-up check in :mod:`estrom.cli`
insists on an ingest token once the Beater listens beyond loopback).

Only SHA-256 digests of the tokens are compared, with
:func:`hmac.compare_digest` against every configured token, so neither the
length of a token nor which one matched shows in the time an answer takes.
Tokens never appear in a ``repr``, a log line, an exception or an answer.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
from pathlib import Path
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, cast
from urllib.parse import unquote_to_bytes, urlsplit

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from estrom.web import error_body, write_json
from router import contract

SCOPE_INGEST = "ingest"
SCOPE_ADMIN = "admin"
SCOPE_TAIL = "tail"
SCOPES = (SCOPE_INGEST, SCOPE_ADMIN, SCOPE_TAIL)

MIN_TOKEN_LENGTH = 16
"""Shortest token accepted from configuration: a guessable token protects nothing."""

GENERATE_HINT = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"


def token_env(scope: str) -> str:
    """The environment variable holding a scope's tokens (comma-separated), e.g. ``ESTROM_INGEST_TOKEN``."""
    return f"ESTROM_{scope.upper()}_TOKEN"


class TokenError(ValueError):
    """The tokens configuration cannot be used; the message says where and why (never the token)."""


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


class Tokens:
    """The bearer tokens of each scope; compares presented tokens in constant time."""

    def __init__(self, by_scope: Optional[Mapping[str, Iterable[str]]] = None) -> None:
        self._secrets: Dict[str, Tuple[str, ...]] = {}
        for scope, tokens in (by_scope or {}).items():
            if scope not in SCOPES:
                raise TokenError(f"unknown token scope {scope!r} (scopes: {', '.join(SCOPES)})")
            unique = tuple(dict.fromkeys(t for t in tokens if t))
            if unique:
                self._secrets[scope] = unique
        self._digests = {scope: tuple(_digest(t) for t in tokens) for scope, tokens in self._secrets.items()}

    def configured(self, scope: str) -> bool:
        """Whether at least one token guards ``scope``."""
        return bool(self._digests.get(scope))

    def allows(self, scope: str, presented: Optional[str]) -> bool:
        """Whether ``presented`` is one of ``scope``'s tokens; an unconfigured scope allows everyone."""
        digests = self._digests.get(scope)
        if not digests:
            return True
        if presented is None:
            return False
        candidate = _digest(presented)
        match = False
        for digest in digests:  # no early exit: every token is compared, whichever matches
            match |= hmac.compare_digest(candidate, digest)
        return match

    def secrets(self, scope: str) -> Tuple[str, ...]:
        """The tokens of ``scope`` themselves, for handing to the router's ticket authentication only."""
        return self._secrets.get(scope, ())

    def __repr__(self) -> str:
        counts = ", ".join(f"{scope}: {len(tokens)}" for scope, tokens in sorted(self._secrets.items()))
        return f"Tokens({counts or 'none'})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tokens) and other._digests == self._digests

    __hash__ = None  # type: ignore[assignment]


def _check_token(token: object, where: str) -> str:
    if not isinstance(token, str):
        raise TokenError(f"{where}: a token must be a string")
    if len(token) < MIN_TOKEN_LENGTH:
        raise TokenError(f"{where}: a token must be at least {MIN_TOKEN_LENGTH} characters; generate one with {GENERATE_HINT}")
    if any(c.isspace() or c == "," for c in token) or not token.isprintable():
        raise TokenError(f"{where}: a token must not contain whitespace, commas or control characters")
    return token


def load_tokens(path: Optional[Path], environ: Mapping[str, str]) -> Tokens:
    """Tokens from the JSON file ``path`` (``{"ingest": [...], "admin": [...], "tail": [...]}``) and the environment.

    Each scope takes the union of both sources; a value in the file may be one
    string or a list; an environment variable may hold several tokens separated
    by commas.  :class:`TokenError` names the file, scope or variable at fault.
    """
    by_scope: Dict[str, List[str]] = {scope: [] for scope in SCOPES}
    if path is not None:
        where = f"--tokens-file {path}"
        try:
            data = json.loads(path.read_text())
        except OSError as e:
            raise TokenError(f"{where}: cannot read it ({e.strerror})") from None
        except ValueError as e:
            raise TokenError(f"{where}: not JSON ({e.__class__.__name__} at line {getattr(e, 'lineno', '?')})") from None
        if not isinstance(data, dict):
            raise TokenError(f"{where}: must hold a JSON object {{\"ingest\": [...], \"admin\": [...], \"tail\": [...]}}")
        for scope, value in data.items():
            if scope not in SCOPES:
                raise TokenError(f"{where}: unknown scope {scope!r} (scopes: {', '.join(SCOPES)})")
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list):
                raise TokenError(f"{where}: {scope!r} must be a token or a list of tokens")
            by_scope[scope].extend(_check_token(t, f"{where}: {scope!r}[{i}]") for i, t in enumerate(values))
    for scope in SCOPES:
        raw = environ.get(token_env(scope), "")
        for i, token in enumerate(t.strip() for t in raw.split(",")):
            if token:
                by_scope[scope].append(_check_token(token, f"${token_env(scope)} (token {i + 1})"))
    return Tokens(by_scope)


def is_loopback(host: str) -> bool:
    """Whether listening on ``host`` is reachable from this machine only (``""`` and ``0.0.0.0`` are not)."""
    if host.lower() in ("localhost", "localhost.", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name may resolve to anything: treat it as reachable


# --- HTTP ----------------------------------------------------------------------------------------------------------

ACCESS_TOKEN_ARG = b"access_token"


def presented_token(request: Request) -> Optional[str]:
    """The token a request presents: ``Authorization: Bearer <t>``, else the ``access_token=`` query argument.

    (The query argument exists for a browser's ``EventSource``, which cannot set headers.)
    """
    header = request.getHeader(b"authorization")
    if header:
        scheme, _, value = header.decode("latin-1").strip().partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    args: Dict[bytes, List[bytes]] = request.args or {}  # Twisted annotates args as None (its class default)
    values = args.get(ACCESS_TOKEN_ARG)
    if values and values[0]:
        return values[0].decode("utf-8", "replace")
    return None


def _a(scope: str) -> str:
    return ("an " if scope[:1] in "aeiou" else "a ") + scope


def _hint(scope: str) -> str:
    where = "Authorization: Bearer <token>"
    if scope == SCOPE_TAIL:
        where += " (or ?access_token=<token> from a browser EventSource)"
    return where


def require(request: Request, tokens: Tokens, scope: str) -> bool:
    """True if ``request`` may act in ``scope``; else False after answering a JSON 401 (no token) or 403 (wrong token)."""
    presented = presented_token(request)
    if tokens.allows(scope, presented):
        return True
    if presented is None:
        request.setHeader(b"www-authenticate", f'Bearer realm="estrom", scope="{scope}"'.encode())
        write_json(request, 401, error_body(contract.ERROR_UNAUTHORIZED, f"this endpoint needs {_a(scope)} token: send {_hint(scope)}",
                                            part="authorization", scope=scope))
    else:
        write_json(request, 403, error_body(contract.ERROR_FORBIDDEN, f"the token presented is not {_a(scope)} token",
                                            part="authorization", scope=scope))
    return False


def redact_query_token(request: Request) -> None:
    """Replace an ``access_token=`` value in ``request.uri``, which access logs show (``request.args`` keep it)."""
    path, sep, query = request.uri.partition(b"?")
    if not sep:
        return
    parts = query.split(b"&")
    redacted = [ACCESS_TOKEN_ARG + b"=redacted" if unquote_to_bytes(p.split(b"=", 1)[0].replace(b"+", b" ")) == ACCESS_TOKEN_ARG else p
                for p in parts]
    if redacted != parts:
        request.uri = path + b"?" + b"&".join(redacted)


class _Refused(Resource):
    """The answer :func:`require` already wrote."""

    isLeaf = True

    def render(self, request: Request) -> object:
        return NOT_DONE_YET


Rule = Callable[[bytes, Sequence[bytes]], Optional[str]]
"""``rule(method, path segments)`` → the scope a request needs, or None if it is open."""


class Guard(Resource):
    """Wraps an API's root resource: a request its rule names a scope for passes only with a token of that scope.

    The segments the rule sees are the ones the wrapped root dispatches on, so
    what is guarded and what is served are decided from the same path.  A
    query ``access_token`` is taken out of the request's arguments and its URI
    (which the access log shows) once checked.
    """

    def __init__(self, inner: Resource, tokens: Tokens, rule: Rule) -> None:
        super().__init__()
        self.inner = inner
        self.tokens = tokens
        self.rule = rule

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        """Check the token, then hand the request to the wrapped root."""
        # Request.process sets postpath before the traversal that calls this.
        scope = self.rule(request.method, [path] + list(cast(List[bytes], request.postpath)))
        redact_query_token(request)  # first: a refusal is logged as soon as it is written
        allowed = scope is None or require(request, self.tokens, scope)
        if request.args:
            request.args.pop(ACCESS_TOKEN_ARG, None)
        return self.inner.getChildWithDefault(path, request) if allowed else _Refused()

    def render(self, request: Request) -> object:
        """Not reached through a Site (the root always has a child path); delegate for completeness."""
        return self.inner.render(request)


def beater_rule(method: bytes, segments: Sequence[bytes]) -> Optional[str]:
    """The Beater: ``/api/v0.1/beat/...`` needs an ingest token; health and metrics stay open."""
    if list(segments[:3]) == [b"api", b"v0.1", b"beat"]:
        return SCOPE_INGEST
    return None


def tailor_rule(method: bytes, segments: Sequence[bytes]) -> Optional[str]:
    """The Tailor: everything but ``/api/v0.1/health``, the page and CORS preflights needs a tail token (if one
    is configured).  The page (``/``, ``/static/<file>``) is code, not data: a browser loads its scripts without
    the token, and the page then sends the one it was opened with (``/?access_token=...``) on every API call."""
    path = list(segments)
    if method == b"OPTIONS" or path == [b"api", b"v0.1", b"health"]:
        return None
    if path in ([], [b""]) or (len(path) == 2 and path[0] == b"static"):
        return None
    return SCOPE_TAIL


# --- CORS ----------------------------------------------------------------------------------------------------------

CORS_METHODS = b"GET, OPTIONS"
CORS_HEADERS = b"Authorization, Last-Event-ID, Content-Type"
CORS_EXPOSE = b"X-Estrom-Subscription-Id, X-Estrom-Query, Retry-After"
CORS_MAX_AGE = b"600"


def parse_origins(value: str) -> Tuple[str, ...]:
    """``https://a.example,https://b.example`` (or ``*``) → the allowed origins; :class:`ValueError` names a bad one."""
    origins: List[str] = []
    for item in (o.strip() for o in value.split(",")):
        if not item:
            continue
        if item == "*":
            origins.append(item)
            continue
        parts = urlsplit(item)
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{item!r} is not an origin (scheme://host[:port], e.g. https://app.example)")
        origins.append(item.rstrip("/").lower())
    return tuple(dict.fromkeys(origins))


class Cors(Resource):
    """Wraps an API's root resource with a CORS allow-list: preflights answered, allowed origins echoed.

    ``Access-Control-Allow-Origin`` names the request's origin only when it is
    allowed (or is ``*`` when ``*`` is configured), with ``Vary: Origin`` so
    that caches keep one answer per origin.  Credentials (cookies) are never
    allowed: tokens travel in ``Authorization`` or ``access_token=``.
    """

    def __init__(self, inner: Resource, origins: Sequence[str]) -> None:
        super().__init__()
        self.inner = inner
        self.any = "*" in origins
        self.origins = frozenset(o for o in origins if o != "*")

    def _allowed(self, origin: Optional[bytes]) -> Optional[bytes]:
        if self.any:
            return b"*"
        if origin is not None and origin.decode("latin-1").lower() in self.origins:
            return origin
        return None

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        """Add the CORS headers; answer a preflight here; pass everything else on."""
        origin = request.getHeader(b"origin")
        request.setHeader(b"vary", b"Origin")
        allowed = self._allowed(origin)
        if allowed is not None:
            request.setHeader(b"access-control-allow-origin", allowed)
            request.setHeader(b"access-control-expose-headers", CORS_EXPOSE)
        if request.method == b"OPTIONS" and origin is not None and request.getHeader(b"access-control-request-method"):
            return _Preflight(allowed is not None)
        return self.inner.getChildWithDefault(path, request)

    def render(self, request: Request) -> object:
        """Not reached through a Site (the root always has a child path); delegate for completeness."""
        return self.inner.render(request)


class _Preflight(Resource):
    """A CORS preflight: 204 with what the browser may send, or a JSON 403 naming the origin."""

    isLeaf = True

    def __init__(self, allowed: bool) -> None:
        super().__init__()
        self.allowed = allowed

    def render(self, request: Request) -> object:
        if not self.allowed:
            origin = (request.getHeader(b"origin") or b"").decode("latin-1")
            write_json(request, 403, error_body(contract.ERROR_FORBIDDEN, "this origin is not in the Tailor's --cors-origins",
                                                part="origin", origin=origin))
            return NOT_DONE_YET
        request.setResponseCode(204)
        request.setHeader(b"access-control-allow-methods", CORS_METHODS)
        request.setHeader(b"access-control-allow-headers", CORS_HEADERS)
        request.setHeader(b"access-control-max-age", CORS_MAX_AGE)
        return b""

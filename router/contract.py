"""The WAMP contract shared by the router, the Beater, the Tailor and clients.

Everything that crosses the router is named here once: the realm, the roles,
the procedure and topic URIs and the error URIs.  ``.crossbar/config.json``
grants permissions in terms of the same names (a test checks they agree).
"""

from __future__ import annotations

from typing import Optional

REALM = "estrom"

# Roles.  Services authenticate with WAMP-ticket; everyone else is anonymous.
ROLE_BEATER = "beater"
ROLE_TAILOR = "tailor"
ROLE_ANONYMOUS = "anonymous"
SERVICE_ROLES = (ROLE_BEATER, ROLE_TAILOR)
ROLE_INGEST = "ingest"
"""Clients that authenticate with an ingest token as their WAMP ticket (authid ``ingest``): may call ``estrom.ingest``."""
ROLE_PEER = "peer"
"""Another router node of a cluster, linked in with WAMP-cryptosign and its node key (``router/config.py``): its
link holds stand-in subscriptions of ``docs-for-*``/``counts-for-*`` and stand-in registrations of ``estrom.*``
for the clients of its own node (``router/rlinks.py``), nothing more.  Not Crossbar's reserved ``rlink``, whose
registrations Crossbar keeps out of the meta API: a Tailor must hear of the Beaters of other nodes."""

# Procedures registered by the Beater.
PROC_REGISTER = "estrom.register"
"""``estrom.register(index, query, default_operator="or", persist=False)`` → registration dict; ``persist=True``
exempts it from expiry (a registration without subscribers for ``--registration-grace-s`` is removed)."""
PROC_LOOKUP = "estrom.lookup"
"""``estrom.lookup(subscription_id)`` → registration dict; ``estrom.error.unknown_subscription`` if absent."""
PROC_REPLAY_PREFIX = "estrom.replay."
"""``estrom.replay.<beater id>(subscription_id, since, limit=1000)`` → ``{"hits": [[seq, json bytes], ...], "gap",
"missed", "more"}`` (services only), one procedure per Beater: what the subscription matched on that Beater after
``since`` (``{"seq": n}``, exclusive, or ``{"time_ms": t}``, inclusive), from its bounded replay store.  Sequence
numbers are per Beater, so a tail resumes by asking every Beater from where its cursor says (``tailor/cursor.py``);
the Tailor finds the Beaters through the router's registration meta API."""


def replay_procedure(beater_id: str) -> str:
    """The replay procedure of one Beater."""
    return PROC_REPLAY_PREFIX + beater_id


def beater_of_replay_procedure(uri: object) -> Optional[str]:
    """The Beater id an ``estrom.replay.<id>`` URI names, or None for other URIs."""
    if isinstance(uri, str) and uri.startswith(PROC_REPLAY_PREFIX) and len(uri) > len(PROC_REPLAY_PREFIX):
        return uri[len(PROC_REPLAY_PREFIX):]
    return None


PROC_HEALTH = "estrom.health"
"""``estrom.health()`` → ``{"percolator": name, "beater": id}`` (services only): a Tailor's probe that a Beater serves."""
PROC_INGEST = "estrom.ingest"
"""``estrom.ingest(index, docs)`` → ingest report (services, and the ingest role)."""
PROC_HIGHLIGHT = "estrom.highlight"
"""``estrom.highlight(subscription_id, sources)`` → ``{"highlights": [{field: [term, ...]}, ...]}`` (services only):
per ``_source`` in order, the terms of each field that the registration's query matched, as the percolator
backend finds them (analysed terms of text fields, whole values of keyword fields).  At most
:data:`MAX_HIGHLIGHT_SOURCES` sources per call (``estrom.error.limit_exceeded``)."""
MAX_HIGHLIGHT_SOURCES = 1000

# Procedures registered by the Tailor.
PROC_COUNTS = "estrom.counts"
"""``estrom.counts(subscription_id, window="10s", by=None, top=10, time_field=None, lateness=None,
provisional=None)`` → ``{"topic", "subscription_id", "window", ...}``: starts (or joins) the window counts of a
subscription and names the topic (:func:`counts_topic_for`) that carries one record per closed window, the
records of ``GET /api/v0.1/counts``.  Counting stops once the topic has had no subscriber for a while; a client
calls it again after it (re)joins."""

# Topics.  Each event carries one positional argument: a list of hits.
TOPIC_PREFIX = "docs-for-"


def topic_for(subscription_id: str) -> str:
    """The topic on which documents matching ``subscription_id`` are published."""
    return TOPIC_PREFIX + subscription_id


TAILED_PREFIX = "tailed-"
"""A Tailor's subscription to ``tailed-<id>`` (services and peer links only) says that it tails the id; nothing
is published there.  The hits of every id some Tailor tails come instead on :data:`TOPIC_TAILED`, all the ids
of a slice in one event: the router's cost is per message, and a POST of a burst hitting a dozen tailed
queries sent a dozen (the p99 at 1,000 docs/s was set by those POSTs)."""

TOPIC_TAILED = "estrom.tailed"
"""Each event: ``[beater, [[seq, hit], ...], {subscription_id: [position in that list, ...]}]``, one slice of one
Beater (its id, as a hit's ``_beater``), each hit once as ``[_seq, its JSON as bytes]`` (the bytes a tail writes:
nobody on the way decodes them), for every id that has a ``tailed-<id>`` subscriber; a Tailor keeps the ids it
tails and ignores the rest."""


def tailed_marker_for(subscription_id: str) -> str:
    """The topic a Tailor subscribes to while it tails ``subscription_id`` (:data:`TAILED_PREFIX`)."""
    return TAILED_PREFIX + subscription_id


COUNTS_TOPIC_PREFIX = "counts-for-"


def counts_topic_for(subscription_id: str, window: str, by: Optional[str] = None, variant: Optional[str] = None) -> str:
    """The topic of one window spec's counts: ``counts-for-<id>-<window>[-<by>][~<variant>]``.

    ``window`` is the window's canonical text (``10s``, ``1m``); ``variant`` is a short tag the Tailor
    derives from the options a topic name does not spell out (``top``, ``time_field``, ...), absent
    for the defaults.  Each event carries one positional argument: one window record.
    """
    topic = f"{COUNTS_TOPIC_PREFIX}{subscription_id}-{window}"
    if by is not None:
        topic += f"-{by}"
    if variant is not None:
        topic += f"~{variant}"
    return topic


# The router's subscription meta API, which the Beater follows to publish only where someone listens.
META_SUBSCRIPTION_ON_CREATE = "wamp.subscription.on_create"
META_SUBSCRIPTION_ON_DELETE = "wamp.subscription.on_delete"
META_SUBSCRIPTION_LIST = "wamp.subscription.list"
META_SUBSCRIPTION_GET = "wamp.subscription.get"
META_SUBSCRIPTION_LOOKUP = "wamp.subscription.lookup"
"""The router subscription of a topic, or None: the Tailor stops counting for a counts topic nobody holds."""
META_SUBSCRIPTION_COUNT_SUBSCRIBERS = "wamp.subscription.count_subscribers"
"""How many sessions a router subscription has (the Beater's admin API shows it per registration)."""
# The registration meta API, which the Tailor follows to know every Beater's replay procedure.
META_REGISTRATION_ON_CREATE = "wamp.registration.on_create"
META_REGISTRATION_ON_DELETE = "wamp.registration.on_delete"
META_REGISTRATION_LIST = "wamp.registration.list"
META_REGISTRATION_GET = "wamp.registration.get"

# Errors (``ApplicationError.error``).
ERROR_INVALID_QUERY = "estrom.error.invalid_query"
ERROR_UNSUPPORTED_QUERY = "estrom.error.unsupported_query"
ERROR_INVALID_INDEX = "estrom.error.invalid_index"
ERROR_INVALID_ARGUMENT = "estrom.error.invalid_argument"
ERROR_INVALID_DOCUMENT = "estrom.error.invalid_document"
ERROR_UNKNOWN_SUBSCRIPTION = "estrom.error.unknown_subscription"
ERROR_UNAVAILABLE = "estrom.error.unavailable"
ERROR_SLOW_CLIENT = "estrom.error.slow_client"
"""An HTTP tail with ``on_slow=close`` whose client fell further behind than its buffer holds."""
ERROR_TOO_MANY_TAILS = "estrom.error.too_many_tails"
"""HTTP 429: the Tailor's limit on open tails (per client address or in total) is reached."""
ERROR_REQUEST_TOO_LARGE = "estrom.error.request_too_large"
"""HTTP 414/431: the request line or the headers are longer than the Tailor reads."""
ERROR_LIMIT_EXCEEDED = "estrom.error.limit_exceeded"
"""Over one of the Beater's configured limits (``beater/limits.py``); the body (WAMP: kwargs) names it as
``limit`` (the setting) and ``value``.  HTTP 413 for a whole request or a query, or one document's entry in
an ingest answer's ``errors``."""
ERROR_TOO_MANY_REGISTRATIONS = "estrom.error.too_many_registrations"
"""HTTP 429: registering one more query would pass ``max_registrations_per_index`` or ``max_registrations``."""
ERROR_UNAUTHORIZED = "estrom.error.unauthorized"
"""HTTP 401: the endpoint needs a token of a scope (named in the body) and none was presented."""
ERROR_FORBIDDEN = "estrom.error.forbidden"
"""HTTP 403: the token presented is not one of the scope's, or a CORS preflight came from an origin not allowed."""
ERROR_METHOD_NOT_ALLOWED = "estrom.error.method_not_allowed"
"""HTTP 405: the endpoint does not serve the request's method; the ``Allow`` header and the body's ``allowed`` list
the ones it does."""

"""The bad inputs of bench/fuzz.py, as hypothesis strategies, and the bytes each becomes.

Every strategy draws a compact *recipe* (an :class:`HttpInput` or a :class:`WampInput`); the
bytes are built only when the input is sent (:func:`build_http`), so an input that stands for
a 2 MB string or a query nested 20,000 levels deep costs a few bytes while it waits in the
queue.  Two placeholders are filled in then: :class:`Good` (a good document, numbered by the
runner, which checks that it reaches the tail) and :class:`Big` (a large value made by rule).

Categories (the ``category`` of each input, counted in the report):

- ``beat_json``: a random JSON value (wrong types, NaN, huge numbers) as a POST body
- ``beat_array``: a JSON array of random items and envelopes, good documents among them
- ``beat_ndjson``: NDJSON with broken lines (truncated, garbage, invalid UTF-8, lone surrogates,
  CR, NUL, blank), good documents among them
- ``beat_deep``: objects and arrays nested up to 50,000 levels, closed or not
- ``beat_huge``: strings over the document limit, 5,000-digit numbers, thousands of fields, long lines
- ``beat_bytes``: bodies that are not UTF-8 JSON at all (random bytes, UTF-16, BOM, form data)
- ``beat_url``: odd index names and paths, percent-encoding, query strings on the ingest path
- ``beat_headers``: odd content types, chunked bodies (also broken), Expect, Authorization junk
- ``beat_method``: other methods and paths on the Beater's port (admin API, metrics, health)
- ``tail_lucene``: random and malformed Lucene query strings (grammar fragments, deep parentheses,
  thousands of clauses, over-long queries)
- ``tail_dsl``: query DSL JSON of known and unknown query kinds with wrong types
- ``tail_params``: odd ``format``, ``since``, ``limit``, ``timeout``, ``default_operator``,
  ``on_slow``, ``persist``, ``s``, duplicated and unknown parameters
- ``tail_encoding``: invalid percent-encoding, raw non-UTF-8 bytes in the query string
- ``tail_headers``: ``Last-Event-ID``, ``Accept``, ``Origin``, ``Authorization`` junk, huge headers
- ``http_garbage``: bytes that are hardly HTTP (no version, HTTP/0.9, HTTP/2 preface, TLS, conflicting
  framing headers); never a request Twisted must wait on (bare-LF line ends, a Content-Length larger
  than the body): waiting for the rest of a request is no hang
- ``wamp_register``: ``estrom.register`` with random arity, types, queries and options
- ``wamp_lookup``: ``estrom.lookup`` with random ids and types
- ``wamp_other``: procedures anonymous may not call or that do not exist
"""

from __future__ import annotations

import json
import random
import warnings
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple, Union
from urllib.parse import quote

from hypothesis import HealthCheck, Phase, given, settings, strategies as st
from hypothesis import seed as hyp_seed

GOOD_INDEX = "fuzzgood"
FUZZ_INDEXES = ["fz0", "fz1", "fz2", "fz3", GOOD_INDEX]
BEAT = "/api/v0.1/beat/"
DOCS = "/api/v0.1/docs"


@dataclass(frozen=True)
class Good:
    """A good document goes here (the runner numbers it and checks that it reaches the tail)."""


@dataclass(frozen=True)
class Big:
    """A large value made when the input is sent: ``kind`` (see :func:`expand`) of ``size``."""

    kind: str
    size: int


Part = Union[bytes, Good, Big]


@dataclass
class HttpInput:
    """One raw HTTP request to the Beater's or the Tailor's port; ``raw`` replaces the whole request."""

    category: str
    port: str  # "beater" or "tailor"
    method: bytes = b"GET"
    target: List[Part] = field(default_factory=list)
    headers: List[Tuple[bytes, bytes]] = field(default_factory=list)
    body: List[Part] = field(default_factory=list)
    goods: str = ""  # how the body holds good documents: "" none, "line" (NDJSON), "item" (array)
    chunked: Optional[List[int]] = None  # send the body chunked, in pieces of these sizes (0: a broken chunk)
    raw: Optional[List[Part]] = None


@dataclass
class WampInput:
    """One WAMP call as an anonymous client."""

    category: str
    procedure: str
    args: List[Any] = field(default_factory=list)
    kwargs: Dict[str, Any] = field(default_factory=dict)


Input = Union[HttpInput, WampInput]

# --- building blocks ------------------------------------------------------------------------

ODD_STRINGS = [
    "", " ", "\t", "\x00", "\\", "\"", "'", "{", "}", "[", "]", "null", "true", "-0", "0", "-1", "1e309",
    "NaN", "Infinity", "-Infinity", "9" * 40, "0x10", "1_000", "\u2028", "\ufeff", "\U0001f600", "é", "ǅ",
    "../..", "%00", "%ff", "a" * 300, "_index", "_id", "_source", "_estrom", "docs-for-x", "*", "?", "AND",
]
words = st.one_of(
    st.sampled_from(["foo", "bar", "cat", "Dog", "wiki", "enwiki", "edit", "a", "x1", "ÉTÉ", "東京", "ß", "ǆ"]),
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
)
odd_text = st.one_of(st.sampled_from(ODD_STRINGS), st.text(max_size=40), words)
field_names = st.one_of(
    st.sampled_from(["title", "user", "wiki", "type", "bot", "n", "a.b", "a.b.c", "_id", "_index", "_source",
                     "fuzz_marker", "good_n", "*", "tit*", "", " ", "x" * 200, "a..b", ".a", "a."]),
    st.text(max_size=15),
)
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2 ** 63), max_value=2 ** 64), finite, odd_text,
)
json_values = st.recursive(
    st.one_of(scalars, st.floats(), st.integers()),
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(field_names, children, max_size=5)),
    max_leaves=25,
)
wamp_values = st.recursive(  # what a WAMP JSON serializer can carry: no NaN, no integers past 64 bits
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(odd_text, children, max_size=4)),
    max_leaves=15,
)


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value`` as a careless client writes them (NaN allowed, non-ASCII raw)."""
    return json.dumps(value, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")


# --- Lucene ---------------------------------------------------------------------------------

LUCENE_PIECES = [
    "AND", "OR", "NOT", "&&", "||", "!", "+", "-", "(", ")", "\"", ":", "^", "~", "*", "?", "\\", "/", "[", "]",
    "{", "}", "TO", "_exists_:", ">", ">=", "<", "<=", "~2", "^0.5", "^-1", "~99999999999", "*:*", "\\\\", "\\\"",
    ":(", "title:", "AND AND", "OR )", "[* TO *]", "{a TO}", "[1 TO 2}", "/[a-z/", "/(a|aa)+b/", "/.{1000000}/",
    "a*b?c", "*a", "?", "\"a b\"~3", "\"unclosed", "title:\"x y\"", "n:>=10", "n:[1 TO 5]", "date:[now-1d TO now]",
    "f:/re/", "\u3000", "\x00", "NOT NOT NOT", "()", "((", "))", "+-", "-+a", "a^", "a~", "a~0.5", "a~-1", "\"\"",
]
lucene_token = st.one_of(
    st.sampled_from(LUCENE_PIECES),
    words,
    st.builds(lambda f, w: f"{f}:{w}", field_names, words),
    st.builds(lambda a, b: f"[{a} TO {b}]", words, words),
    st.builds(lambda w, n: f"{w}~{n}", words, st.integers(-3, 10)),
)
lucene = st.builds(
    lambda tokens, sep: sep.join(tokens),
    st.lists(lucene_token, min_size=1, max_size=12),
    st.sampled_from([" ", "", "  ", "\t", "\n"]),
)
big_lucene = st.builds(Big, st.sampled_from(["parens", "clauses", "long_term", "query_chars", "regex_bomb"]),
                       st.sampled_from([100, 300, 1025, 3000, 20000, 70000]))

# --- query DSL ------------------------------------------------------------------------------

LEAF_KINDS = ["match", "match_phrase", "term", "terms", "range", "prefix", "wildcard", "regexp", "fuzzy",
              "exists", "match_all", "match_none", "query_string", "simple_query_string", "multi_match", "ids",
              "script", "geo_distance", "nested", "more_like_this", "percolate", "unknown_kind", ""]
leaf_arg = st.one_of(
    json_values,
    st.dictionaries(field_names, st.one_of(scalars, st.dictionaries(
        st.sampled_from(["query", "value", "gte", "lt", "gt", "lte", "operator", "fuzziness", "boost", "slop",
                         "minimum_should_match", "analyzer", "format", "time_zone", "flags", "case_insensitive",
                         "rewrite", "prefix_length", "max_expansions", "zero_terms_query"]),
        scalars, max_size=4)), max_size=3),
    st.builds(lambda q: {"query": q}, lucene),
    st.builds(lambda f: {"field": f}, field_names),
)
dsl_leaf = st.builds(lambda kind, arg: {kind: arg}, st.sampled_from(LEAF_KINDS), leaf_arg)
dsl = st.recursive(
    dsl_leaf,
    lambda children: st.one_of(
        st.builds(lambda parts, msm: {"bool": {**parts, **({"minimum_should_match": msm} if msm is not None else {})}},
                  st.dictionaries(st.sampled_from(["must", "should", "filter", "must_not", "mustn't"]),
                                  st.one_of(children, st.lists(children, max_size=4), scalars), max_size=4),
                  st.one_of(st.none(), scalars)),
        st.builds(lambda c: {"constant_score": {"filter": c}}, children),
        st.builds(lambda cs: {"dis_max": {"queries": cs}}, st.lists(children, max_size=3)),
        st.builds(lambda c: {"query": c}, children),
        st.builds(lambda c, extra: {**c, **extra}, children, st.dictionaries(odd_text, scalars, max_size=2)),
    ),
    max_leaves=10,
)
dsl_text = st.one_of(
    st.builds(lambda q: json.dumps(q, allow_nan=True), dsl),
    st.builds(lambda q, cut: json.dumps(q)[:cut], dsl, st.integers(1, 60)),  # truncated
    st.sampled_from(["{", "{}", "{\"query\":", "{\"bool\":{\"must\":[]}}", "{\"match_all\":{}}x", "{\"a\":1}{\"b\":2}",
                     "{\"term\":{\"f\":{\"value\":NaN}}}", "{\"range\":{\"n\":{\"gte\":1e999}}}"]),
)

# --- HTTP requests --------------------------------------------------------------------------


def pct(text: str) -> bytes:
    """``text`` percent-encoded as a careful client would send it."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="").encode("ascii")


def query_string(pairs: List[Tuple[str, Part]]) -> List[Part]:
    """``?k=v&...`` as target parts (Big values stay placeholders)."""
    parts: List[Part] = []
    for n, (key, value) in enumerate(pairs):
        parts.append((b"?" if n == 0 else b"&") + pct(key) + b"=")
        parts.append(value if isinstance(value, (Big, Good)) else pct(value if isinstance(value, str) else str(value)))
    return parts


indexes = st.one_of(st.sampled_from(FUZZ_INDEXES), st.sampled_from(["", "A", "UPPER", "-x", "_x", "a b", "a/b", "..",
                                                                    "a" * 300, "docs-for-1", "ü", "a,b", "a*"]), odd_text)
odd_values = st.one_of(
    st.sampled_from(["", "0", "-1", "1", "1.5", "1e309", "-1e309", "nan", "inf", "-inf", "9" * 30, "abc", "json",
                     "ndjson", "sse", "xml", "JSON", "and", "or", "AND", "xor", "drop", "close", "true", "false",
                     "yes", "2", "@", "@1,a:b", "@x", "@1764590000000", "@1764590000000,ffffffff:1", ",,,", "a:b:c",
                     "2026-12-01T10:00:00Z", "2026-13-45T99:99:99Z", "2026-12-01", "1000000000000", "-1000000000000",
                     "99999999999999999999999", "0x1f", "1_0", " 1", "1 ", "+1", "١٢", "\x00"]),
    odd_text,
)
TAIL_KEYS = ["i", "q", "s", "format", "since", "limit", "timeout", "default_operator", "on_slow", "persist",
             "access_token", "callback", "i[]", "Q", "", "_", "pretty"]


def _tail(category: str, pairs: List[Tuple[str, Part]], headers: List[Tuple[bytes, bytes]]) -> HttpInput:
    return HttpInput(category, "tailor", b"GET", [DOCS.encode()] + query_string(pairs), headers)


tail_lucene = st.builds(
    lambda i, q, extra: _tail("tail_lucene", [("i", i), ("q", q), *extra], []),
    st.one_of(st.sampled_from(FUZZ_INDEXES), indexes),
    st.one_of(lucene, lucene, big_lucene),
    st.lists(st.tuples(st.sampled_from(["format", "default_operator", "limit", "timeout"]), odd_values), max_size=2),
)
tail_dsl = st.builds(
    lambda i, q: _tail("tail_dsl", [("i", i), ("q", q)], []),
    st.sampled_from(FUZZ_INDEXES), dsl_text,
)
tail_params = st.builds(
    lambda base, extra: _tail("tail_params", base + extra, []),
    st.one_of(st.just([("i", "fz1"), ("q", "foo")]), st.just([]), st.just([("s", "0123456789abcdef")]),
              st.builds(lambda s: [("s", s)], odd_values), st.just([("i", "fz2"), ("q", "foo"), ("s", "0123456789abcdef")])),
    st.lists(st.tuples(st.sampled_from(TAIL_KEYS), odd_values), min_size=1, max_size=6),
)
raw_query_bytes = st.one_of(
    st.sampled_from([b"%", b"%z", b"%zz", b"%ff", b"%c3", b"%c3%28", b"%ed%a0%80", b"%00", b"\xff\xfe", b"\xc3\x28",
                     b"&&&", b"==", b"=", b";", b"#frag", b"+", b"%2B", b"i=fz1&i=fz2", b"q=%", b"\x7f", b"%%%"]),
    st.binary(max_size=20).map(lambda b: bytes(c for c in b if c not in b" \r\n")),
)
tail_encoding = st.builds(
    lambda pieces: HttpInput("tail_encoding", "tailor", b"GET", [DOCS.encode() + b"?" + b"".join(pieces)]),
    st.lists(st.one_of(raw_query_bytes, st.just(b"i=fz3&q=foo"), st.just(b"&")), min_size=1, max_size=6),
)
header_names = st.one_of(
    st.sampled_from([b"Last-Event-ID", b"Accept", b"Origin", b"Authorization", b"Content-Type", b"Content-Length",
                     b"Transfer-Encoding", b"Host", b"Cookie", b"Range", b"If-None-Match", b"X-Forwarded-For",
                     b"Access-Control-Request-Method", b"Expect", b"Upgrade", b"Connection", b"Te", b"X"]),
    st.binary(min_size=1, max_size=10).map(lambda b: bytes(c for c in b if c not in b" :\r\n") or b"X"),
)
header_values = st.one_of(
    st.sampled_from([b"", b"text/event-stream", b"application/json", b"*/*", b"text/event-stream;q=0", b"Bearer",
                     b"Bearer ", b"Bearer x", b"Basic Zm9vOmJhcg==", b"bearer " + b"a" * 40, b"@1,a:b", b"99",
                     b"-1", b"\xff\xfe", b"null", b"https://evil.example", b"chunked", b"gzip", b"100-continue",
                     b"websocket", b"close"]),
    st.binary(max_size=30).map(lambda b: bytes(c for c in b if c not in b"\r\n")),
    st.builds(Big, st.just("header"), st.sampled_from([1000, 20000])),
)
odd_headers = st.lists(st.tuples(header_names, header_values), max_size=4)
tail_headers = st.builds(
    lambda pairs, headers: _tail("tail_headers", pairs, headers),
    st.sampled_from([[("i", "fz1"), ("q", "foo")], [("i", "fz2"), ("q", "bar"), ("format", "sse")],
                     [("s", "0123456789abcdef")], [("i", "fz3"), ("q", "(")]]),
    odd_headers.filter(lambda hs: all(n.lower() not in (b"content-length", b"transfer-encoding") for n, _ in hs)),
)

# --- ingest ---------------------------------------------------------------------------------


def _beat(category: str, body: List[Part], goods: str = "", index: str = GOOD_INDEX,
          headers: Optional[List[Tuple[bytes, bytes]]] = None) -> HttpInput:
    return HttpInput(category, "beater", b"POST", [BEAT.encode() + pct(index)],
                     headers if headers is not None else [(b"Content-Type", b"application/json")], body, goods)


envelopes = st.builds(
    lambda idx, id_, src, extra: {**({"_index": idx} if idx is not None else {}), **({"_id": id_} if id_ is not None else {}),
                                  **({"_source": src} if src is not None else {}), **extra},
    st.one_of(st.none(), st.just(GOOD_INDEX), scalars, json_values),
    st.one_of(st.none(), scalars, json_values),
    st.one_of(st.none(), json_values, st.dictionaries(field_names, scalars, max_size=3)),
    st.dictionaries(field_names, scalars, max_size=2),
)
array_items = st.one_of(json_values, envelopes, st.dictionaries(field_names, json_values, max_size=4), st.just(Good()))
beat_json = st.builds(lambda v, index: _beat("beat_json", [dumps(v)], index=index), json_values, st.sampled_from(FUZZ_INDEXES))
beat_array = st.builds(
    lambda items: _beat("beat_array", [b"["] + [p for n, item in enumerate(items)
                                                   for p in ([b","] if n else []) + [item if isinstance(item, Good) else dumps(item)]] + [b"]"],
                        goods="item"),
    st.lists(array_items, min_size=1, max_size=12),
)
bad_lines = st.one_of(
    st.builds(dumps, json_values),
    st.builds(dumps, envelopes),
    st.builds(lambda v, cut: dumps(v)[:cut], st.dictionaries(field_names, json_values, min_size=1, max_size=3), st.integers(1, 30)),
    st.sampled_from([b"", b" ", b"\r", b"{", b"}", b"[", b"]", b"{}", b"[]", b"null", b"1", b"\"x\"", b"{\"a\":}", b"{'a':1}",
                     b"{\"a\":1}}", b"{\"a\":1} {\"b\":2}", b"{\"a\":NaN}", b"{\"a\":Infinity}", b"{\"a\":\"\\ud800\"}",
                     b"{\"\\udfff\":1}", b"{\"a\":\"\xff\"}", b"{\"a\":\"\xc3\x28\"}", b"\xef\xbb\xbf{\"a\":1}", b"{\"a\":\"\x00\"}",
                     b"{\"a\":1,\"a\":2}", b"{\"_index\":\"other\",\"_source\":{}}", b"{\"_source\":5}", b"{\"_id\":{}}",
                     b"{\"a\":1e999}", b"{\"a\":-0.0}", b"{\"a\":123456789012345678901234567890}", b"\x00\x00",
                     b"{\"a\":\"\\u0000\"}", b"{\"a\": [1, \"x\", {}, null]}", b"{\"\":1}", b"{\" \":{\"\":{}}}"]),
    st.binary(max_size=30).map(lambda b: b.replace(b"\n", b"")),
    st.builds(Big, st.sampled_from(["line", "deep_line", "number_line", "fields_line"]), st.sampled_from([200, 5000, 1100000])),
)
beat_ndjson = st.builds(
    lambda lines, sep, trailing: _beat("beat_ndjson", [p for n, line in enumerate(lines) for p in ([sep] if n else []) + [line]]
                                       + ([sep] if trailing else []), goods="line",
                                       headers=[(b"Content-Type", b"application/x-ndjson")]),
    st.lists(st.one_of(bad_lines, bad_lines, st.just(Good())), min_size=2, max_size=15),
    st.sampled_from([b"\n", b"\n", b"\r\n", b"\n\n"]),
    st.booleans(),
)
beat_deep = st.builds(
    lambda kind, depth, closed: _beat("beat_deep", [Big(f"{kind}{'' if closed else '_open'}", depth)], index="fz0"),
    st.sampled_from(["deep_array", "deep_object", "deep_mixed"]),
    st.sampled_from([99, 100, 101, 255, 256, 257, 1000, 5000, 50000]),
    st.booleans(),
)
beat_huge = st.builds(
    lambda kind, size: _beat("beat_huge", [Big(kind, size)], index="fz0"),
    st.sampled_from(["string_doc", "number_doc", "fields_doc", "array_doc", "key_doc"]),
    st.sampled_from([1000, 4300, 5000, 1048000, 1048577, 2000000]),
)
beat_bytes = st.builds(
    lambda body, ctype: _beat("beat_bytes", [body], index="fz1", headers=[(b"Content-Type", ctype)]),
    st.one_of(
        st.binary(max_size=200),
        st.builds(lambda v: dumps(v).decode("utf-8", "surrogatepass").encode("utf-16", "surrogatepass"), json_values),
        st.builds(lambda v: b"\xef\xbb\xbf" + dumps(v), json_values),
        st.sampled_from([b"a=1&b=2", b"<doc><a>1</a></doc>", b"\x1f\x8b\x08\x00", b"\xff\xfe{\x00}\x00", b"{\"a\":\"\xed\xa0\x80\"}"]),
    ),
    st.sampled_from([b"application/json", b"application/x-ndjson", b"text/plain", b"application/x-www-form-urlencoded",
                     b"application/json; charset=latin-1", b"multipart/form-data; boundary=x", b""]),
)
beat_url = st.builds(
    lambda path, qs: HttpInput("beat_url", "beater", b"POST", [path] + qs, [(b"Content-Type", b"application/json")],
                               [b"{\"a\": 1}"]),
    st.one_of(
        st.builds(lambda i: BEAT.encode() + pct(i), indexes),
        st.sampled_from([b"/api/v0.1/beat", b"/api/v0.1/beat/", b"/api/v0.1/beat//", b"/api/v0.1/beat/fz0/x",
                         b"/api/v0.1/beat/%2e%2e", b"/api/v0.1/beat/fz0%00", b"/api/v0.1/beat/%ff%fe", b"//api/v0.1/beat/fz0",
                         b"/api/v0.1/beat/fz0/", b"/api/v0.1/./beat/fz0", b"/API/V0.1/BEAT/fz0", b"/api/v0.2/beat/fz0",
                         b"/api/v0.1/beat/fz0;x=1", b"/api/v0.1/beat/%", b"*", b"http://x/api/v0.1/beat/fz0"]),
        st.builds(lambda n: b"/api/v0.1/beat/" + b"a" * n, st.sampled_from([256, 17000])),
    ),
    st.one_of(st.just([]), st.builds(lambda ps: query_string(ps), st.lists(st.tuples(odd_text, odd_text), max_size=3))),
)
beat_headers = st.builds(
    lambda headers, body, chunks: HttpInput("beat_headers", "beater", b"POST", [BEAT.encode() + b"fz2"], headers,
                                            [body], chunked=chunks),
    odd_headers.filter(lambda hs: all(n.lower() not in (b"content-length", b"transfer-encoding", b"expect") for n, _ in hs)),
    st.sampled_from([b"{\"a\":1}", b"{\"a\":1}\n{\"b\":2}", b"[]", b"x"]),
    st.one_of(st.none(), st.lists(st.integers(0, 8), min_size=1, max_size=4)),
)
admin_paths = st.one_of(
    st.sampled_from([b"/api/v0.1/admin/registrations", b"/api/v0.1/admin/registrations/", b"/api/v0.1/admin",
                     b"/api/v0.1/admin/registrations/0123456789abcdef", b"/api/v0.1/admin/registrations/%ff",
                     b"/api/v0.1/admin/registrations/a/b", b"/metrics", b"/metrics/x", b"/api/v0.1/health",
                     b"/api/v0.1/health/x", b"/", b"/api", b"/api/v0.1", b"/favicon.ico"]),
    st.builds(lambda s: b"/api/v0.1/admin/registrations/" + pct(s), odd_text),
)
beat_method = st.builds(
    lambda method, path, qs, port: HttpInput("beat_method", port, method, [path] + qs, [], [b"{}"] if method in (b"POST", b"PUT") else []),
    st.sampled_from([b"GET", b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"TRACE", b"CONNECT",
                     b"BREW", b"get", b"G\xffT"]),
    st.one_of(admin_paths, st.sampled_from([b"/api/v0.1/docs", b"/api/v0.1/beat/fz0"])),
    st.one_of(st.just([]), st.builds(lambda ps: query_string(ps), st.lists(
        st.tuples(st.sampled_from(["i", "limit", "q", "name[]", ""]), odd_values), max_size=3))),
    st.sampled_from(["beater", "beater", "tailor"]),
)
http_garbage = st.builds(
    lambda raw, port: HttpInput("http_garbage", port, raw=[raw]),
    st.one_of(
        st.sampled_from([b"GET /\r\n\r\n", b"GET / HTTP/0.9\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
b"\r\n\r\n", b"GET  /  HTTP/1.1\r\n\r\n",
                         b"GET /api/v0.1/health HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhellowo",
                         b"POST /api/v0.1/beat/fz0 HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
                         b"POST /api/v0.1/beat/fz0 HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                         b"POST /api/v0.1/beat/fz0 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                         b"POST /api/v0.1/beat/fz0 HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
                         b"GET /api/v0.1/docs HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
                         b"GET /api/v0.1/docs HTTP/1.1\r\n : x\r\n\r\n", b"GET /api/v0.1/docs HTTP/1.1\r\nNoColon\r\n\r\n",
                         b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n"]),
        st.builds(lambda b: b + b"\r\n\r\n", st.binary(min_size=1, max_size=60)),
        st.builds(lambda n: b"GET /" + b"a" * n + b" HTTP/1.1\r\n\r\n", st.sampled_from([16000, 17000, 70000])),
    ),
    st.sampled_from(["beater", "tailor"]),
)

# --- WAMP -----------------------------------------------------------------------------------

wamp_queries = st.one_of(lucene, dsl_text, dsl, wamp_values, st.builds(Big, st.sampled_from(["clauses", "query_chars", "parens"]),
                                                                        st.sampled_from([1025, 3000, 70000])))
wamp_register = st.builds(
    lambda args, kwargs: WampInput("wamp_register", "estrom.register", args, kwargs),
    st.one_of(
        st.builds(lambda i, q: [i, q], st.one_of(st.sampled_from(FUZZ_INDEXES), indexes, wamp_values), wamp_queries),
        st.builds(lambda i, q, op: [i, q, op], st.sampled_from(FUZZ_INDEXES), wamp_queries, st.one_of(odd_values, wamp_values)),
        st.builds(lambda i, q, op, p: [i, q, op, p], st.sampled_from(FUZZ_INDEXES), lucene, st.sampled_from(["and", "or"]), wamp_values),
        st.lists(wamp_values, max_size=6),
    ),
    st.one_of(st.just({}), st.dictionaries(st.sampled_from(["persist", "default_operator", "index", "query", "x", "subscription_id"]),
                                           wamp_values, max_size=2)),
)
wamp_lookup = st.builds(
    lambda args: WampInput("wamp_lookup", "estrom.lookup", args),
    st.one_of(st.builds(lambda s: [s], st.one_of(odd_values, st.text(alphabet="0123456789abcdef", min_size=16, max_size=16))),
              st.lists(wamp_values, max_size=3)),
)
wamp_other = st.builds(
    lambda proc, args: WampInput("wamp_other", proc, args),
    st.sampled_from(["estrom.ingest", "estrom.replay.0000", "estrom.health", "estrom.registrations", "estrom.unregister",
                     "wamp.session.list", "wamp.subscription.list", "wamp.registration.list", "x", "estrom.register.x",
                     "estrom.lookup.x", "docs-for-x"]),
    st.lists(wamp_values, max_size=3),
)

CATEGORIES: Dict[str, Tuple[st.SearchStrategy, int]] = {  # strategy and weight
    "beat_json": (beat_json, 6), "beat_array": (beat_array, 6), "beat_ndjson": (beat_ndjson, 10), "beat_deep": (beat_deep, 3),
    "beat_huge": (beat_huge, 1), "beat_bytes": (beat_bytes, 4), "beat_url": (beat_url, 4), "beat_headers": (beat_headers, 4),
    "beat_method": (beat_method, 4), "tail_lucene": (tail_lucene, 14), "tail_dsl": (tail_dsl, 8), "tail_params": (tail_params, 8),
    "tail_encoding": (tail_encoding, 4), "tail_headers": (tail_headers, 4), "http_garbage": (http_garbage, 3),
    "wamp_register": (wamp_register, 10), "wamp_lookup": (wamp_lookup, 4), "wamp_other": (wamp_other, 2),
}


_WHEEL = [name for name, (_, weight) in CATEGORIES.items() for _ in range(weight)]
random.Random(5).shuffle(_WHEEL)


def category_of(draw_index: int) -> str:
    """The category of the ``draw_index``-th input: a fixed, shuffled, weighted round robin, so the shares
    are exact and the categories interleave whatever the seed."""
    return _WHEEL[draw_index % len(_WHEEL)]


def draw_inputs(seed: int, start: int, count: int) -> List[Input]:
    """Inputs ``start`` .. ``start + count - 1`` of the run with ``seed``: the same list for the same seed
    (and hypothesis version).  Each category of a chunk is one hypothesis run of its own (one strategy
    per run, as hypothesis requires; fresh runs keep memory flat), then the categories are interleaved
    in the order of the wheel."""
    wanted = [category_of(n) for n in range(start, start + count)]
    drawn: Dict[str, List[Input]] = {}
    for number, name in enumerate(CATEGORIES):
        need = wanted.count(name)
        got: List[Input] = []
        attempt = 0
        while len(got) < need:
            strategy = CATEGORIES[name][0]

            @hyp_seed((seed * 1_000_003 + start) * 97 + number * 7 + attempt)
            @settings(max_examples=need - len(got), database=None, derandomize=False, phases=[Phase.generate],
                      deadline=None, suppress_health_check=list(HealthCheck))
            @given(strategy)
            def one(value: Input) -> None:
                if len(got) < need:
                    got.append(value)

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # hypothesis warns about the repr of the large strategies
                one()
            attempt += 1
        drawn[name] = got
    taken = {name: iter(values) for name, values in drawn.items()}
    return [next(taken[name]) for name in wanted]


# --- from recipe to bytes -------------------------------------------------------------------


def expand(big: Big) -> bytes:
    """The bytes of a large value."""
    n = big.size
    k = big.kind
    if k == "parens":
        return ("(" * n + "foo" + ")" * n).encode()
    if k == "clauses":
        return " OR ".join(f"w{i}" for i in range(n)).encode()
    if k == "long_term":
        return b"x" * n
    if k == "query_chars":
        return b"foo " * (n // 4 + 1)
    if k == "regex_bomb":
        return b"/" + b"(a|aa)+" * max(1, n // 1000) + b"b/"
    if k == "header":
        return b"v" * n
    if k == "line":
        return b"{\"s\":\"" + b"y" * n + b"\"}"
    if k == "deep_line":
        return b"[" * n + b"]" * n
    if k == "number_line":
        return b"{\"n\":" + b"7" * n + b"}"
    if k == "fields_line":
        return b"{" + b",".join(b"\"f%d\":1" % i for i in range(min(n, 20000))) + b"}"
    if k.startswith("deep_"):
        kind, closed = k.removesuffix("_open"), not k.endswith("_open")
        if kind == "deep_array":
            open_, close = b"[" * n, b"]" * n
        elif kind == "deep_object":
            open_, close = b"{\"a\":" * n + b"1", b"}" * n
        else:
            open_, close = b"{\"a\":[" * n + b"1", b"]}" * n
        return b"{\"d\":" + open_ + (close + b"}" if closed else b"")
    if k == "string_doc":
        return b"{\"s\":\"" + b"z" * n + b"\"}"
    if k == "number_doc":
        return b"{\"n\":" + b"9" * min(n, 100000) + b"}"
    if k == "fields_doc":
        return b"{" + b",".join(b"\"f%d\":%d" % (i, i) for i in range(min(n, 50000))) + b"}"
    if k == "array_doc":
        return b"{\"a\":[" + b",".join(b"1" for _ in range(min(n, 300000))) + b"]}"
    if k == "key_doc":
        return b"{\"" + b"k" * n + b"\":1}"
    raise ValueError(k)


def build_parts(parts: List[Part], good: Any) -> bytes:
    """Join ``parts``, each Good made by ``good()`` and each Big expanded."""
    return b"".join(good() if isinstance(p, Good) else expand(p) if isinstance(p, Big) else p for p in parts)


def wamp_value(value: Any) -> Any:
    """A WAMP argument with its Big placeholders expanded (as text)."""
    if isinstance(value, Big):
        return expand(value).decode("utf-8", "replace")
    if isinstance(value, list):
        return [wamp_value(v) for v in value]
    if isinstance(value, dict):
        return {k: wamp_value(v) for k, v in value.items()}
    return value


def build_http(item: HttpInput, good: Any) -> bytes:
    """The request bytes of ``item`` (``good()`` makes each good document's JSON)."""
    if item.raw is not None:
        return build_parts(item.raw, good)
    target = build_parts(item.target, good)
    body = build_parts(item.body, good)
    headers = [(n, build_parts([v], good)) for n, v in item.headers]
    lines = [item.method + b" " + target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [n + b": " + v for n, v in headers]
    if not any(n.lower() == b"connection" for n, _ in headers):
        lines.append(b"Connection: close")
    if item.chunked is not None:
        lines.append(b"Transfer-Encoding: chunked")
        out, pos = b"", 0
        for size in item.chunked:
            if size == 0:  # a broken chunk: a size that is not hexadecimal
                out += b"zz\r\n" + body[pos:pos + 1] + b"\r\n"
                pos += 1
                continue
            piece = body[pos:pos + size]
            pos += len(piece)
            if piece:
                out += b"%x\r\n" % len(piece) + piece + b"\r\n"
        if pos < len(body):
            out += b"%x\r\n" % (len(body) - pos) + body[pos:] + b"\r\n"
        return b"\r\n".join(lines) + b"\r\n\r\n" + out + b"0\r\n\r\n"
    if item.body or item.method in (b"POST", b"PUT", b"PATCH"):
        lines.append(b"Content-Length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body

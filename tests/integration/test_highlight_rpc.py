"""estrom.highlight end to end, on both backends: a real ``estrom up`` with the embedded percolator and one
with ``--percolator elasticsearch`` (``ESTROM_ES_URL``, scripts/services start elasticsearch), the same
recent-change documents posted to both, the same queries registered, the RPC called over WAMP as the
Tailor calls it (tailor role, ticket from ``<data-dir>/secrets.json``).

The two must give the same highlights, with one difference pinned below: Elasticsearch's highlighter
marks text and keyword fields only, so the numbers, dates and booleans a query matched are listed by
the embedded percolator alone.

Run as a module (``python -m tests.integration.test_highlight_rpc URL SECRETS CALLS``) this file is the
WAMP client: it joins as the tailor, makes each ``[procedure, args]`` call of the JSON file CALLS and
prints one JSON line per answer, ``{"result": ...}`` or ``{"error": uri, "kwargs": ...}``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, Dict, Iterator, List, Mapping, Tuple

import pytest

from router import contract
from tests.integration.conftest import ROOT, Estrom

INDEX = "hl-" + uuid.uuid4().hex[:8]
SAMPLE = ROOT / "examples" / "data" / "recentchange.ndjson"
NOT_HIGHLIGHTED_BY_ES = ("long", "float", "date", "boolean")

# (query, what it exercises).  Each matches some of the sample documents.
QUERIES: List[Tuple[Any, str]] = [
    ("claim", "a bare term: every field (default field *)"),
    ("comment:wbcreate*", "a prefix on a text field"),
    ("comment:wbset*", "a prefix matching several tokens"),
    ("user:artix", "a term on a text field"),
    ("user.keyword:MisterSynergy", "a keyword sub-field: the whole value"),
    ("server_name.keyword:www.wikidata.org", "a keyword value with dots"),
    ('comment:"Indonesiako herria"', "a phrase"),
    ('comment:"Doaf in Indonesie" -user:bot*', "a phrase and a negated prefix"),
    ("comment:petscan OR comment:quickstatements", "a disjunction"),
    ("comment:indonesei~1", "a fuzzy term"),
    ("parsedcomment:/cre.*/", "a regexp"),
    ("comment:w?setlabel*", "a wildcard"),
    ('"created claim"', "a phrase on every field"),
    ("meta.domain:commons.wikimedia.org", "a dotted text value"),
    ("Oribella AND -title:Q50361691", "a bare term with a negated field"),
    ({"match": {"comment": {"query": "descriptions languages bot", "operator": "or"}}}, "DSL match, or"),
    ({"match": {"comment": {"query": "herria indonesiako", "operator": "and"}}}, "DSL match, and"),
    ("type:edit AND bot:true AND comment:bot", "text clauses next to a boolean"),
    ("length.new:[1000 TO 2000] AND comment:petscan", "a range on a number next to a term"),
    ("namespace:0 AND user:succubot", "a number term next to a text term"),
    ("comment:property\\:p31", "a token holding a colon"),
    ("Q*", "a prefix on every field, case kept for keyword fields"),
    ("indonesei~1", "a fuzzy term on every field"),
    ("Mister*", "an uppercase prefix on every field: lowercased for text, as written for keyword fields"),
    ("user:Artix*", "an uppercase prefix on a text field"),
    ({"terms": {"user.keyword": ["SuccuBot", "Tubezlob"]}}, "DSL terms on a keyword field"),
    ("MisterSynergy", "a mixed-case term: the keyword value written so is highlighted too"),
    ("Artix Kreiger 2", "several terms on every field"),
    ("comment:/wb[a-z]+/ AND user:/s.*/", "two regexps"),
    ({"match_phrase": {"comment": {"query": "doaf indonesie", "slop": 2}}}, "a sloppy phrase"),
    ("commons*", "a prefix matching dotted tokens"),
    ({"bool": {"should": [{"match": {"comment": "petscan"}}, {"range": {"length.new": {"gte": 100000}}}],
               "minimum_should_match": 1}}, "should clauses, one a range"),
    ("www.wikidata.org", "a dotted value on every field"),
    ("P31", "a term mostly inside longer tokens (property:p31): matched alone only"),
    ({"wildcard": {"server_name.keyword": {"value": "*.wikidata.*"}}}, "a wildcard on a keyword field"),
    ({"prefix": {"user": {"value": "ARTIX", "case_insensitive": True}}}, "a case-insensitive prefix"),
    ("comment:(+indonesiako -doaf)", "a required and a forbidden term in one field"),
]


def sample() -> List[Dict[str, Any]]:
    """Every 20th recent change: about 200 documents of several wikis and types."""
    lines = SAMPLE.read_text().splitlines()
    return [json.loads(line) for line in lines[::20]]


# --- the WAMP client (this file run as a module) ----------------------------------------------------


def call_as_tailor(instance: Estrom, calls: List[List[Any]], tmp: Path) -> List[Dict[str, Any]]:
    """Make ``calls`` (``[procedure, args]``) as the tailor role over WAMP; their answers, in order."""
    path = tmp / f"calls-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(calls))
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.test_highlight_rpc", instance.router_url,
         str(instance.data_dir / "secrets.json"), str(path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(answers) == len(calls), done.stdout + done.stderr
    return answers


def _client(url: str, secrets: str, calls_file: str) -> None:
    import txaio
    from autobahn.twisted.component import Component, run
    from autobahn.wamp.exception import ApplicationError

    ticket = json.loads(Path(secrets).read_text())["tailor"]
    calls = json.loads(Path(calls_file).read_text())
    component = Component(transports=[{"url": url, "type": "websocket", "max_retries": 0}], realm=contract.REALM,
                          authentication={"ticket": {"authid": "tailor", "ticket": ticket}})

    def emit(value: Any) -> None:
        sys.__stdout__.write(json.dumps(value) + "\n")  # txaio's logging replaces sys.stdout
        sys.__stdout__.flush()

    @component.on_join
    async def joined(session: Any, details: Any) -> None:
        try:
            for procedure, args in calls:
                try:
                    emit({"result": await session.call(procedure, *args)})
                except ApplicationError as e:
                    emit({"error": e.error, "kwargs": e.kwargs})
        finally:
            session.leave()

    txaio.start_logging(out=sys.stderr, level="warn")
    run([component], log_level=None)


# --- fixtures ---------------------------------------------------------------------------------------


def es_url() -> str:
    """ESTROM_ES_URL, checked to answer (the tests fail, never skip, without it)."""
    from tests.integration.test_elasticsearch_backend import es_url as checked

    return checked()


def start(instance: Estrom) -> Estrom:
    instance.start()
    status, report = instance.post(INDEX, sample())  # maps the fields, as the hits to highlight were
    assert status == 200 and report["rejected"] == 0, report
    return instance


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    instance = start(Estrom(tmp_path_factory.mktemp("hl-embedded")))
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def elastic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Estrom]:
    from tests.integration.test_elasticsearch_backend import es_delete_index

    instance = start(Estrom(tmp_path_factory.mktemp("hl-es"), extra_args=["--percolator", "elasticsearch", "--es-url", es_url()]))
    yield instance
    instance.stop()
    es_delete_index("estrom-queries-" + INDEX)


def register(instance: Estrom, query: Any) -> str:
    [answer] = instance.wamp("call", contract.PROC_REGISTER, json.dumps([INDEX, query]))
    assert "result" in answer, answer
    return str(answer["result"]["id"])


def highlights(instance: Estrom, tmp: Path, queries: List[Any], sources: List[Any]) -> List[List[Dict[str, List[str]]]]:
    """For each query, estrom.highlight of ``sources``: one highlight per source."""
    ids = [register(instance, query) for query in queries]
    answers = call_as_tailor(instance, [[contract.PROC_HIGHLIGHT, [sub_id, sources]] for sub_id in ids], tmp)
    for answer in answers:
        assert "result" in answer, answer
    return [answer["result"]["highlights"] for answer in answers]


def es_types() -> Dict[str, str]:
    """Field path -> mapped type of the test index's percolator index, read from the cluster."""
    from beater.percolator.elasticsearch import field_type
    from tests.integration.test_elasticsearch_backend import es_get

    status, body = es_get(f"/estrom-queries-{INDEX}/_mapping")
    assert status == 200, body
    properties = next(iter(body.values()))["mappings"]["properties"]
    paths: List[str] = []

    def walk(props: Mapping[str, Any], prefix: str) -> None:
        for key, mapping in props.items():
            paths.append(prefix + key)
            paths.extend(prefix + key + "." + sub for sub in mapping.get("fields", {}))
            walk(mapping.get("properties", {}), prefix + key + ".")
    walk(properties, "")
    return {path: str(field_type(properties, path)) for path in paths}


def strings_only(found: Dict[str, List[str]], types: Mapping[str, str]) -> Dict[str, List[str]]:
    """``found`` without the number, date and boolean fields Elasticsearch does not highlight."""
    return {path: terms for path, terms in found.items() if types.get(path) not in NOT_HIGHLIGHTED_BY_ES}


# --- tests ------------------------------------------------------------------------------------------


def test_both_backends_highlight_the_same_terms(embedded: Estrom, elastic: Estrom, tmp_path: Path) -> None:
    """37 queries over 204 recent changes: the same {field: [terms]} per document from either backend."""
    docs = sample()
    queries = [query for query, _ in QUERIES]
    mine = highlights(embedded, tmp_path, queries, docs)
    theirs = highlights(elastic, tmp_path, queries, docs)
    types = es_types()
    pairs = 0
    problems: List[str] = []
    for (query, what), ours, es in zip(QUERIES, mine, theirs):
        assert len(ours) == len(es) == len(docs)
        compared = [strings_only(h, types) for h in ours]
        differing = [(i, a, b) for i, (a, b) in enumerate(zip(compared, es)) if a != b]
        matched = sum(1 for h in es if h)
        if differing:
            problems.append(f"{query!r} ({what}): {len(differing)} documents differ, e.g. (document, embedded, "
                            f"elasticsearch) {differing[:2]}")
        elif not matched:
            problems.append(f"{query!r} ({what}) highlights nothing in the sample")
        pairs += matched
    assert not problems, "\n".join(problems)
    assert pairs >= 20


def test_numbers_dates_and_booleans_are_highlighted_by_the_embedded_backend_only(
        embedded: Estrom, elastic: Estrom, tmp_path: Path) -> None:
    """Pinned difference: Elasticsearch's highlighters mark text and keyword fields only (a number's term in
    the index is no text to mark), so a range on ``length.new`` or ``bot:true`` highlights nothing there,
    while the embedded percolator lists the values it matched."""
    doc = next(d for d in sample() if d.get("bot") is True and "quickstatements" in d.get("comment", ""))
    queries = [f"length.new:[{doc['length']['new']} TO {doc['length']['new']}]", "bot:true AND comment:quickstatements",
               f"meta.dt:{doc['meta']['dt'][:10]} AND comment:quickstatements"]
    [[by_range], [by_flag], [by_date]] = highlights(embedded, tmp_path, queries, [doc])
    [[es_range], [es_flag], [es_date]] = highlights(elastic, tmp_path, queries, [doc])
    assert by_range == {"length.new": [str(doc["length"]["new"])]} and es_range == {}
    assert by_flag == {"bot": ["true"], "comment": ["quickstatements"]} and es_flag == {"comment": ["quickstatements"]}
    assert by_date["meta.dt"][0].startswith(doc["meta"]["dt"][:10]) and "meta.dt" not in es_date


@pytest.mark.parametrize("backend", ["embedded", "elastic"])
def test_sources_the_query_does_not_match_or_that_are_no_objects_get_nothing(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """In order, one highlight per source; a document the query does not match, or a non-object, gets {}."""
    instance: Estrom = request.getfixturevalue(backend)
    [found] = highlights(instance, tmp_path, ['comment:"Indonesiako herria"'],
                         [{"comment": "Indonesiako herria"}, {"comment": "herria Indonesiako"}, "text", None, 3,
                          {"comment": "x Indonesiako herria"}])
    assert found == [{"comment": ["herria", "indonesiako"]}, {}, {}, {}, {}, {"comment": ["herria", "indonesiako"]}]


@pytest.mark.parametrize("backend", ["embedded", "elastic"])
def test_unknown_ids_bad_lists_and_too_many_sources_are_refused(
        backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """The errors name what is wrong, as the Beater's other procedures do."""
    instance: Estrom = request.getfixturevalue(backend)
    sub_id = register(instance, "comment:claim")
    unknown, not_a_list, too_many = call_as_tailor(instance, [
        [contract.PROC_HIGHLIGHT, ["0123456789abcdef", [{}]]],
        [contract.PROC_HIGHLIGHT, [sub_id, {"comment": "claim"}]],
        [contract.PROC_HIGHLIGHT, [sub_id, [{}] * (contract.MAX_HIGHLIGHT_SOURCES + 1)]],
    ], tmp_path)
    assert unknown["error"] == contract.ERROR_UNKNOWN_SUBSCRIPTION
    assert not_a_list["error"] == contract.ERROR_INVALID_ARGUMENT and not_a_list["kwargs"]["part"] == "dict"
    assert too_many["error"] == contract.ERROR_LIMIT_EXCEEDED
    assert (too_many["kwargs"]["limit"], too_many["kwargs"]["value"]) == ("max_highlight_sources", contract.MAX_HIGHLIGHT_SOURCES)


def test_anonymous_clients_may_not_call_highlight(embedded: Estrom) -> None:
    """estrom.highlight is for services: an anonymous caller gets the router's authorization error."""
    sub_id = register(embedded, "comment:claim")
    [answer] = embedded.wamp("call", contract.PROC_HIGHLIGHT, json.dumps([sub_id, [{"comment": "claim"}]]))
    assert answer["error"] == "wamp.error.not_authorized"


if __name__ == "__main__":
    _client(*sys.argv[1:4])

"""``highlight=true`` on a real ``estrom up``: hits carry the terms the percolator matched, others are untouched."""

from __future__ import annotations

from tests.integration.conftest import Estrom
from tests.integration.tailclients import open_tail, post_docs


def test_a_highlighting_tail_gets_the_matched_terms_per_field(estrom: Estrom) -> None:
    tail = open_tail(estrom, "ndjson", i="hl-tail", q="comment:claim* title:river", highlight="true")
    post_docs(estrom, "hl-tail", [{"comment": "Claims and claimed", "title": "the river bank"}])
    [hit] = tail.read_hits(1)
    tail.close()
    assert hit["_highlight"] == {"comment": ["claimed", "claims"], "title": ["river"]}


def test_a_plain_tail_of_the_same_query_gets_no_highlight(estrom: Estrom) -> None:
    plain = open_tail(estrom, "ndjson", i="hl-tail", q="title:lake")
    marked = open_tail(estrom, "ndjson", i="hl-tail", q="title:lake", highlight="true")
    post_docs(estrom, "hl-tail", [{"title": "lake view"}])
    [plain_hit], [marked_hit] = plain.read_hits(1), marked.read_hits(1)
    plain.close()
    marked.close()
    assert "_highlight" not in plain_hit and marked_hit["_highlight"] == {"title": ["lake"]}
    assert {k: v for k, v in marked_hit.items() if k != "_highlight"} == plain_hit


def test_hits_replayed_on_a_resume_are_highlighted_too(estrom: Estrom) -> None:
    first = open_tail(estrom, "ndjson", i="hl-tail", q="title:pond", highlight="true")
    post_docs(estrom, "hl-tail", [{"title": "pond one"}])
    [seen] = first.read_hits(1)
    first.close()
    post_docs(estrom, "hl-tail", [{"title": "pond two"}, {"title": "pond three"}])
    resumed = open_tail(estrom, "ndjson", i="hl-tail", q="title:pond", highlight="true", since=seen["_seq"])
    hits = resumed.read_hits(2)
    resumed.close()
    assert [h["_source"]["title"] for h in hits] == ["pond two", "pond three"]
    assert all(h["_highlight"] == {"title": ["pond"]} for h in hits)


def test_highlight_must_be_true_or_false(estrom: Estrom) -> None:
    from tests.integration.tailclients import TailClient

    client = TailClient.get(estrom.tailor_port, {"i": "hl-tail", "q": "x", "highlight": "yes"})
    assert client.status == 400
    assert client.body_json()["part"] == "highlight=yes"

"""estrom.replay.<beater> end to end: a real ``estrom up``, documents posted over HTTP, the RPC called over WAMP.

The caller joins as the tailor role with the ticket from ``<data-dir>/secrets.json``, as the Tailor
does; an anonymous client must be refused.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

from beater.hits import encode_hit
from router import contract
from tests.integration.conftest import Estrom

INDEX = "replays"


def replay(estrom: Estrom, sub_id: str, since: Dict[str, int], limit: int = 1000) -> Dict[str, Any]:
    """One estrom.replay call as the tailor role: its answer, or the error."""
    [line] = estrom.wamp("replay", str(estrom.data_dir / "secrets.json"), sub_id, json.dumps(since), str(limit))
    return line


def register(estrom: Estrom, query: str) -> str:
    [line] = estrom.wamp("call", "estrom.register", json.dumps([INDEX, query]))
    return line["result"]["id"]


def hits_of(answer: Dict[str, Any]) -> List[Dict[str, Any]]:
    return [json.loads(text) for _, text in answer["result"]["hits"]]


def test_replay_answers_what_a_subscription_matched_and_pages(estrom: Estrom) -> None:
    """After documents are posted, the tailor replays the subscription's hits: since a seq, since a time, a page at a time."""
    sub_id = register(estrom, "colour:red")  # registering tracks the id: its hits are recorded
    status, report = estrom.post(INDEX, [{"colour": c, "n": n} for n, c in enumerate(["red", "blue", "red", "red", "green"])])
    assert status == 200 and report["deliveries"] == 3

    everything = replay(estrom, sub_id, {"seq": 0})
    assert everything["binary"] is True  # hits travel as bytes, ready to write to a tail
    result = everything["result"]
    assert (result["gap"], result["missed"], result["more"]) == (False, 0, False)
    hits = hits_of(everything)
    assert [h["_source"]["n"] for h in hits] == [0, 2, 3]
    assert [seq for seq, _ in result["hits"]] == [h["_seq"] for h in hits] == sorted(h["_seq"] for h in hits)
    assert [text.encode() for _, text in result["hits"]] == [encode_hit(h) for h in hits]  # the bytes of a live hit

    first = replay(estrom, sub_id, {"seq": 0}, limit=2)["result"]
    assert [seq for seq, _ in first["hits"]] == [h["_seq"] for h in hits[:2]] and first["more"] is True
    rest = replay(estrom, sub_id, {"seq": first["hits"][-1][0]}, limit=2)["result"]
    assert [seq for seq, _ in rest["hits"]] == [hits[2]["_seq"]] and rest["more"] is False and rest["gap"] is False

    after_first = replay(estrom, sub_id, {"seq": hits[0]["_seq"]})
    assert [h["_source"]["n"] for h in hits_of(after_first)] == [2, 3]  # since a seq is exclusive

    from beater.hits import received_ms

    at = received_ms(hits[0]["_received"])
    since_time = replay(estrom, sub_id, {"time_ms": at})
    assert [h["_source"]["n"] for h in hits_of(since_time)] == [0, 2, 3]  # since a time is inclusive
    assert since_time["result"]["gap"] is False


def test_replay_refuses_unknown_subscriptions_and_malformed_cursors(estrom: Estrom) -> None:
    """Unknown ids are estrom.error.unknown_subscription; a bad since is estrom.error.invalid_argument."""
    sub_id = register(estrom, "colour:blue")
    assert replay(estrom, "0123456789abcdef", {"seq": 0})["error"] == "estrom.error.unknown_subscription"
    assert replay(estrom, sub_id, {"seq": -1})["error"] == "estrom.error.invalid_argument"
    assert replay(estrom, sub_id, {"time_ms": 0}, limit=0)["error"] == "estrom.error.invalid_argument"


def test_anonymous_clients_may_not_call_replay(estrom: Estrom) -> None:
    """estrom.replay.<beater> is for services: an anonymous caller gets the router's authorization error."""
    sub_id = register(estrom, "colour:green")
    beater = json.loads((estrom.data_dir / "sequences.json").read_text())["beater"]
    [line] = estrom.wamp("call", contract.replay_procedure(beater), json.dumps([sub_id, {"seq": 0}]))
    assert "result" not in line
    assert line["error"] == "wamp.error.not_authorized"

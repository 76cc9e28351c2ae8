"""Query identity: a lossless JSON form of the IR and the subscription id hashed from it."""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Type

import xxhash

from beater.errors import InvalidQuery
from beater.query import ir

# Bump when the canonical form of any query changes meaning or shape: ids change with it.
FORMAT_VERSION = "estrom-query-1"

_TYPES: Dict[str, Type[ir.Node]] = {
    cls.__name__: cls
    for cls in (
        ir.MatchAll, ir.MatchNone, ir.Match, ir.Phrase, ir.Term, ir.Terms, ir.Prefix, ir.Wildcard,
        ir.Regexp, ir.Fuzzy, ir.Range, ir.Exists, ir.Ids, ir.Bool,
    )
}
_NODE_TUPLES = {"must", "should", "must_not", "filter"}


def node_to_json(node: ir.Node) -> Dict[str, Any]:
    """The node as plain JSON: ``{"type": ClassName, field: value, ...}``, every field present."""
    out: Dict[str, Any] = {"type": type(node).__name__}
    for f in dataclasses.fields(node):
        value = getattr(node, f.name)
        if f.name in _NODE_TUPLES:
            out[f.name] = [node_to_json(child) for child in value]
        elif isinstance(value, tuple):
            out[f.name] = list(value)
        else:
            out[f.name] = value
    return out


def node_from_json(obj: Any) -> ir.Node:
    """Rebuild a node written by :func:`node_to_json` (exact round trip)."""
    if not isinstance(obj, dict) or obj.get("type") not in _TYPES:
        raise InvalidQuery("not a serialised query node", part=repr(obj)[:200])
    cls = _TYPES[obj["type"]]
    kwargs: Dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in obj:
            continue
        value = obj[f.name]
        if f.name in _NODE_TUPLES:
            value = tuple(node_from_json(child) for child in value)
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[f.name] = value
    return cls(**kwargs)


def canonical_json(node: ir.Node) -> str:
    """Compact, key-sorted JSON of the node: the text subscription ids hash."""
    return json.dumps(node_to_json(node), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def subscription_id(index: str, node: ir.Node, mapping: str = "") -> str:
    """The id of ``node`` (already canonical) registered on ``index``.

    ``mapping`` tags the index's configured mapping (empty for dynamic mapping): the
    same text can mean another query under another mapping, so it gets another id.
    """
    scope = index if not mapping else index + "\x00mapping:" + mapping
    return xxhash.xxh64((FORMAT_VERSION + scope + "\x00" + canonical_json(node)).encode("utf-8")).hexdigest()


__all__ = ["FORMAT_VERSION", "canonical_json", "node_from_json", "node_to_json", "subscription_id"]

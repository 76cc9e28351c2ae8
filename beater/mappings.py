"""Explicit mappings given in configuration: the field model of an index, fixed ahead of its documents.

Without configuration an index's fields are mapped as Elasticsearch's dynamic
mapping would map them (:mod:`beater.percolator.mapping`).  A mappings file names
indexes and gives each the body Elasticsearch takes under ``mappings``::

    {"logs": {"dynamic": false,
              "properties": {"user": {"type": "keyword"},
                             "message": {"type": "text"},
                             "status": {"type": "long"}}}}

Only what the embedded percolator matches exactly as Elasticsearch does is
accepted: the types dynamic mapping produces (text with an optional ``.keyword``
sub-field, keyword with ``ignore_above``, long, float, date in the default
format, boolean, objects) and parameters that do not change what matches.
Anything else is refused at start with the index, field and parameter named.
``dynamic: true`` (the default) maps fields the configuration does not name
with the dynamic rules; ``dynamic: false`` leaves them unsearchable.

The same mapping drives both backends: the embedded field model starts from
it, and the Elasticsearch backend creates its percolator index with it.  Its
tag goes into the ids of the index's queries, because under another mapping the
same query text can match other documents.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Dict, Mapping, Set

import xxhash

from beater.errors import InvalidIndex
from beater.query.kinds import DYNAMIC, KEYWORD_SUFFIX, FieldKinds
from beater.registration import validate_index

INTERNAL_PREFIX = "@estrom_"
_DEFAULT_DATE_FORMAT = "strict_date_optional_time||epoch_millis"
# parameters that change how a field is stored or scored, never which documents match
_HARMLESS = {"doc_values", "store", "norms", "eager_global_ordinals", "similarity"}
_ALLOWED: Dict[str, Set[str]] = {
    "text": {"type", "fields", "analyzer", "search_analyzer", "search_quote_analyzer"},
    "keyword": {"type", "ignore_above"},
    "long": {"type", "coerce", "ignore_malformed"},
    "float": {"type", "coerce", "ignore_malformed"},
    "date": {"type", "format", "ignore_malformed"},
    "boolean": {"type"},
    "object": {"type", "properties"},
}
SUPPORTED_TYPES = tuple(_ALLOWED)


class MappingError(ValueError):
    """A configured mapping the percolators cannot honour; the message names where and why."""


@dataclass(frozen=True)
class IndexMapping:
    """The configured mapping of one index."""

    dynamic: bool
    properties: Mapping[str, Any]
    tag: str

    def kinds(self) -> FieldKinds:
        """The keyword/text view of this mapping that parsing and canonicalisation use."""
        return self._kinds

    @cached_property
    def _kinds(self) -> FieldKinds:
        # computed once: every registration on the index (and every stored one at start) asks for it
        mapped: Set[str] = set()
        keywords: Set[str] = set()
        twinned: Set[str] = set()
        _collect_kinds(self.properties, "", mapped, keywords, twinned)
        return FieldKinds(frozenset(mapped), frozenset(keywords), frozenset(twinned), self.dynamic, self.tag)

    def to_json(self) -> Dict[str, Any]:
        """The body Elasticsearch takes under ``mappings`` (``dynamic`` as a boolean)."""
        return {"dynamic": self.dynamic, "properties": dict(self.properties)}


def _collect_kinds(properties: Mapping[str, Any], prefix: str, mapped: Set[str], keywords: Set[str], twinned: Set[str]) -> None:
    for name, spec in properties.items():
        path = prefix + name
        mapped.add(path)
        kind = spec.get("type", "object")
        if kind == "object":
            _collect_kinds(spec.get("properties", {}), path + ".", mapped, keywords, twinned)
        elif kind == "keyword":
            keywords.add(path)
        elif kind == "text" and "keyword" in spec.get("fields", {}):
            sub = path + KEYWORD_SUFFIX
            mapped.add(sub)
            keywords.add(sub)
            twinned.add(sub)


def field_kinds(mappings: Mapping[str, IndexMapping], index: str) -> FieldKinds:
    """The field kinds of ``index``: from its configured mapping, else dynamic mapping's."""
    configured = mappings.get(index)
    return DYNAMIC if configured is None else configured.kinds()


def check_mapping(index: str, body: Any) -> IndexMapping:
    """``body`` (what Elasticsearch takes under ``mappings``) checked for ``index``; MappingError if refused."""
    where = f"index {index!r}"
    if not isinstance(body, Mapping):
        raise MappingError(f"{where}: the mapping must be an object with 'properties' (and optionally 'dynamic')")
    unknown = sorted(set(body) - {"dynamic", "properties"})
    if unknown:
        raise MappingError(f"{where}: mapping parameter {unknown[0]!r} is not supported (only 'dynamic' and 'properties')")
    dynamic = body.get("dynamic", True)
    if dynamic in ("true", "false"):
        dynamic = dynamic == "true"
    if not isinstance(dynamic, bool):
        raise MappingError(f"{where}: 'dynamic' must be true or false, not {json.dumps(dynamic)} ('strict' and 'runtime' are not supported)")
    properties = body.get("properties", {})
    _check_properties(properties, where, "")
    # the tag goes into ids: only what changes matching may change it
    canonical = json.dumps({"dynamic": dynamic, "properties": _meaning(properties)}, sort_keys=True, separators=(",", ":"))
    return IndexMapping(dynamic=dynamic, properties=properties, tag=xxhash.xxh64(canonical.encode("utf-8")).hexdigest())


def _meaning(properties: Mapping[str, Any]) -> Dict[str, Any]:
    """Checked ``properties`` without the parameters that never change what matches."""
    out: Dict[str, Any] = {}
    for name, spec in properties.items():
        kept = {k: v for k, v in spec.items() if k not in _HARMLESS}
        if "properties" in kept:
            kept["properties"] = _meaning(kept["properties"])
        if "fields" in kept:
            kept["fields"] = _meaning(kept["fields"])
        out[name] = kept
    return out


def _check_properties(properties: Any, where: str, prefix: str) -> None:
    if not isinstance(properties, Mapping):
        raise MappingError(f"{where}: 'properties' of {prefix.rstrip('.') or 'the mapping'!r} must be an object")
    for name, spec in properties.items():
        path = prefix + str(name)
        if not isinstance(name, str) or not name or "." in name:
            raise MappingError(f"{where}: field name {path!r} must be non-empty and without dots (nest objects in 'properties')")
        if name.startswith(INTERNAL_PREFIX):
            raise MappingError(f"{where}: field {path!r}: names starting with {INTERNAL_PREFIX!r} are estrom's own")
        if not isinstance(spec, Mapping):
            raise MappingError(f"{where}: field {path!r}: its mapping must be an object")
        kind = spec.get("type", "object")
        if kind not in _ALLOWED:
            raise MappingError(f"{where}: field {path!r}: type {kind!r} is not supported (supported: {', '.join(SUPPORTED_TYPES)})")
        for parameter in sorted(set(spec) - _ALLOWED[kind] - _HARMLESS):
            raise MappingError(f"{where}: field {path!r}: parameter {parameter!r} is not supported on a {kind} field")
        _check_parameters(spec, kind, where, path)
        if kind == "object":
            _check_properties(spec.get("properties", {}), where, path + ".")


def _check_parameters(spec: Mapping[str, Any], kind: str, where: str, path: str) -> None:
    field = f"{where}: field {path!r}"
    for analyzer in ("analyzer", "search_analyzer", "search_quote_analyzer"):
        if analyzer in spec and spec[analyzer] != "standard":
            raise MappingError(f"{field}: {analyzer} {spec[analyzer]!r} is not supported (only 'standard')")
    for flag in ("coerce", "ignore_malformed"):
        if flag in spec and spec[flag] is not True:
            raise MappingError(f"{field}: {flag} must be true (documents are read leniently, as the percolators index them)")
    if kind == "date" and spec.get("format", _DEFAULT_DATE_FORMAT) != _DEFAULT_DATE_FORMAT:
        raise MappingError(f"{field}: date format {spec['format']!r} is not supported (only {_DEFAULT_DATE_FORMAT!r})")
    if "ignore_above" in spec:
        _check_ignore_above(spec["ignore_above"], field)
    if kind == "text":
        subs = spec.get("fields", {})
        if not isinstance(subs, Mapping):
            raise MappingError(f"{field}: 'fields' must be an object of sub-fields")
        for other in sorted(set(subs) - {"keyword"}):
            raise MappingError(f"{field}: sub-field {other!r} in 'fields' is not supported (only 'keyword', of type keyword)")
        if subs:
            sub = subs["keyword"]
            if not isinstance(sub, Mapping) or sub.get("type") != "keyword":
                raise MappingError(f"{field}: sub-field 'keyword' must be {{\"type\": \"keyword\"}}, optionally with ignore_above")
            for parameter in sorted(set(sub) - {"type", "ignore_above"} - _HARMLESS):
                raise MappingError(f"{where}: field {path + KEYWORD_SUFFIX!r}: parameter {parameter!r} is not supported on a keyword sub-field")
            if "ignore_above" in sub:
                _check_ignore_above(sub["ignore_above"], f"{where}: field {path + KEYWORD_SUFFIX!r}")


def _check_ignore_above(value: Any, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MappingError(f"{field}: ignore_above must be a non-negative integer, not {json.dumps(value)}")


def load_mappings(path: Path) -> Dict[str, IndexMapping]:
    """The mappings file at ``path``: ``{index: mapping}``, every mapping checked; MappingError if not usable."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as e:
        raise MappingError(f"mappings file {path} cannot be read: {e.strerror}") from None
    except (ValueError, UnicodeDecodeError) as e:
        raise MappingError(f"mappings file {path} is not valid JSON: {e}") from None
    if not isinstance(data, Mapping):
        raise MappingError(f"mappings file {path} must hold an object of index name -> mapping")
    out: Dict[str, IndexMapping] = {}
    for index, body in data.items():
        try:
            validate_index(index)
        except InvalidIndex as e:
            raise MappingError(f"mappings file {path}: {index!r} is not a usable index name: {e.message}") from None
        try:
            out[index] = check_mapping(index, body)
        except MappingError as e:
            raise MappingError(f"mappings file {path}: {e}") from None
    return out


__all__ = ["IndexMapping", "MappingError", "SUPPORTED_TYPES", "check_mapping", "field_kinds", "load_mappings"]

"""Elasticsearch mappings for the fields documents show: dynamic-mapping rules, written explicitly.

The Elasticsearch backend keeps ``dynamic: false`` on its percolator indexes and
adds the fields of each batch with these rules, so that the field types it
percolates against are the ones the embedded percolator's field model infers.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Mapping, Optional, Sequence

TEXT = {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 256}}}

# Elasticsearch's default dynamic_date_formats:
# strict_date_optional_time || yyyy/MM/dd HH:mm:ss Z || yyyy/MM/dd Z
_STRICT_DATE_OPTIONAL_TIME = re.compile(
    r"^\d{4}(-\d{2}(-\d{2}(T\d{2}(:\d{2}(:\d{2}([.,]\d{1,9})?)?)?(Z|[+-]\d{2}(:?\d{2})?)?)?)?)?$"
)
_SLASH_DATE = re.compile(r"^\d{4}/\d{2}/\d{2}( \d{2}:\d{2}:\d{2})?( ?(Z|[+-]\d{2}:?\d{2}))?$")


def looks_like_date(value: str) -> bool:
    """Whether dynamic date detection would map this string as a date."""
    return bool(_STRICT_DATE_OPTIONAL_TIME.match(value) or _SLASH_DATE.match(value))


def es_type(value: Any) -> Optional[Dict[str, Any]]:
    """The mapping Elasticsearch's dynamic mapping gives a field whose first value is ``value``."""
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "long"}
    if isinstance(value, float):
        return {"type": "float"}
    if isinstance(value, str):
        return {"type": "date"} if looks_like_date(value) else dict(TEXT)
    return None


def mapping_for_documents(documents: Sequence[Mapping[str, Any]], existing: Mapping[str, Any]) -> Dict[str, Any]:
    """The ``properties`` to add so every field of ``documents`` is mapped (empty if none are new)."""
    new: Dict[str, Any] = {}
    for document in documents:
        _merge_object(document, existing, new)
    return new


def _merge_object(obj: Mapping[str, Any], existing: Mapping[str, Any], new: Dict[str, Any]) -> None:
    for key, value in obj.items():
        if not isinstance(key, str) or not key or "." in key:
            continue  # dotted keys would need object expansion; leave them unmapped
        for item in value if isinstance(value, list) else [value]:
            if item is None:
                continue
            known = existing.get(key) or new.get(key)
            if isinstance(item, dict):
                if known is not None and "properties" not in known and known.get("type") not in (None, "object"):
                    continue  # type conflict: the field was mapped as a value first
                sub_existing = (existing.get(key) or {}).get("properties", {})
                sub_new: Dict[str, Any] = dict((new.get(key) or {}).get("properties", {}))
                _merge_object(item, sub_existing, sub_new)
                if sub_new:
                    new[key] = {"properties": sub_new}
                elif key not in existing and key not in new:
                    new[key] = {"type": "object"}
            elif known is None:
                mapped = es_type(item)
                if mapped is not None:
                    new[key] = mapped


def merge_properties(existing: Mapping[str, Any], new: Mapping[str, Any]) -> Dict[str, Any]:
    """``existing`` with the ``new`` properties added, object sub-properties merged recursively.

    A field already mapped keeps its mapping: as in Elasticsearch, the first value fixes the type.
    """
    merged = dict(existing)
    for key, mapping in new.items():
        old = merged.get(key)
        if old is not None and "properties" in mapping:
            combined = dict(old)
            combined["properties"] = merge_properties(old.get("properties", {}), mapping["properties"])
            merged[key] = combined
        elif old is None:
            merged[key] = mapping
    return merged

"""Documents as the embedded percolator sees them: typed, flattened, analysed fields.

The field model of an index is the Elasticsearch mapping its documents would get:
the configured mapping if there is one (:mod:`beater.mappings`), and for the
fields it does not name (unless it says ``dynamic: false``) the dynamic mapping
(:mod:`beater.percolator.mapping`: the first value of a field fixes its type;
strings are ``text`` with a ``.keyword`` sub-field, or ``date`` when they look
like one).  It grows before each batch is matched with the fields that batch
shows first, and is persisted with the registrations.

A document is then read as Elasticsearch would index it with that mapping and
``ignore_malformed``: values that cannot be indexed in their field (an object
where a value is mapped, a number that does not parse, a date in another format,
a dotted key) are left out; strings and numbers in text fields are analysed with
the standard analyzer, arrays leave a position gap of 100 between values;
keyword fields keep values of at most their ``ignore_above`` characters (256 for
dynamic ``.keyword`` sub-fields); numbers are coerced
(``"12.5"`` in a long field is 12, float fields hold 32-bit floats); dates are
epoch milliseconds.

The walk follows a *plan* of the model (:func:`plan_of`): per path, the decisions the
mapping makes (its kind, its ``.keyword`` sub-field and ``ignore_above``, the fields a
value marks present), built once per model version and scope.  The optional native
module (``_analysis.c``) walks the same plan with the same answers; :func:`analyse_document`
uses it when it is built (tests/unit/test_native_analysis.py holds the two equal).
"""

from __future__ import annotations

import json
import math
import re
import struct
from bisect import bisect_left
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from beater.percolator.embedded.analysis import analyze_cached
from beater.percolator.mapping import mapping_for_documents, merge_properties
from beater.query.kinds import KEYWORD_SUFFIX
from beater.query.reads import source_paths

TEXT, KEYWORD, LONG, FLOAT, DATE, BOOLEAN, OBJECT = "text", "keyword", "long", "float", "date", "boolean", "object"
POSITION_GAP = 100
PREFIX_VIEW = 3  # AnalysedDoc.prefix_view holds the terms of at least this many characters
INTERNAL_PREFIX = "@estrom_"
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

PrefixView = Tuple[Dict[str, List[str]], List[str], List[str]]
"""AnalysedDoc.prefix_view: sorted terms by field, of every text field, of every keyword field."""


def any_with_start(terms: List[str], start: str, test: Callable[[str], bool]) -> bool:
    """Whether one of the sorted ``terms`` that start with ``start`` passes ``test``: a binary search
    to the first of them, then the run of them (the native core does the same)."""
    for i in range(bisect_left(terms, start), len(terms)):
        term = terms[i]
        if not term.startswith(start):
            return False
        if test(term):
            return True
    return False


# --- numbers and dates ----------------------------------------------------------------------------

def to_float32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float (what a ``float`` field stores)."""
    try:
        return struct.unpack("f", struct.pack("f", value))[0]
    except OverflowError:
        return math.copysign(math.inf, value)


def parse_number(value: Any) -> Optional[float]:
    """A JSON number or numeric string as a float, None if it is not one (booleans are not numbers)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text or text.lower().lstrip("+-") in ("nan", "inf", "infinity"):
            return None
        try:
            return float(text)
        except ValueError:
            return None
    return None


def parse_long(value: Any) -> Optional[int]:
    """A document value coerced into a ``long`` field, as Elasticsearch does (decimals truncated)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if LONG_MIN <= value <= LONG_MAX else None
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[+-]?\d+", text):
            number = int(text)
            return number if LONG_MIN <= number <= LONG_MAX else None
    parsed = parse_number(value)
    if parsed is None or not math.isfinite(parsed) or not (LONG_MIN <= parsed <= LONG_MAX):
        return None
    return int(parsed)  # truncation toward zero, as Java's (long) cast


def parse_float(value: Any) -> Optional[float]:
    """A document value in a ``float`` field (32-bit)."""
    number = parse_number(value)
    if number is None or math.isnan(number):
        return None
    return to_float32(number)


_DATE = re.compile(
    r"(?P<y>\d{4})(?:-(?P<mo>\d{2})(?:-(?P<d>\d{2})(?:T(?P<h>\d{2})(?::(?P<mi>\d{2})(?::(?P<s>\d{2})"
    r"(?:[.,](?P<frac>\d{1,9}))?)?)?(?P<tz>Z|[+-]\d{2}(?::?\d{2})?)?)?)?)?"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def parse_date(text: Any, round_up: bool = False, allow_epoch: bool = True) -> Optional[int]:
    """``strict_date_optional_time||epoch_millis`` as epoch milliseconds, None if neither parses.

    With ``round_up`` the missing time fields take their largest value (23:59:59.999)
    and missing month/day stay 1, as Elasticsearch's round-up parser for ``lte``/``gt``.
    """
    if isinstance(text, bool):
        return None
    if isinstance(text, (int, float)):
        return int(math.floor(text)) if math.isfinite(text) else None
    if not isinstance(text, str):
        return None
    m = _DATE.fullmatch(text)
    if m is None:
        if allow_epoch and re.fullmatch(r"[+-]?\d+(\.\d+)?", text):
            return int(math.floor(float(text))) if "." in text else int(text)
        return None
    g = m.groupdict()
    try:
        hour_default = 23 if round_up else 0
        minute_default = 59 if round_up else 0
        base = datetime(
            int(g["y"]), int(g["mo"] or 1), int(g["d"] or 1),
            int(g["h"]) if g["h"] is not None else hour_default,
            int(g["mi"]) if g["mi"] is not None else minute_default,
            int(g["s"]) if g["s"] is not None else minute_default,
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    if g["frac"] is not None:
        millis = int((g["frac"] + "000")[:3])
    else:
        millis = 999 if round_up else 0
    tz = g["tz"]
    offset = timedelta(0)
    if tz and tz != "Z":
        sign = -1 if tz[0] == "-" else 1
        digits = tz[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
        if hours > 18 or minutes > 59:
            return None
        offset = sign * timedelta(hours=hours, minutes=minutes)
    delta = (base - offset) - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + millis


def text_of(value: Any) -> str:
    """How a JSON scalar reads in a text or keyword field (numbers and booleans as JSON writes them)."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def parse_boolean(value: Any) -> Optional[bool]:
    """A document value in a ``boolean`` field ("" is false), None if it is not a boolean."""
    if isinstance(value, bool):
        return value
    if value == "true":
        return True
    if value in ("false", ""):
        return False
    return None


# --- field model ----------------------------------------------------------------------------------

class FieldModel:
    """The mapping of one index: Elasticsearch ``properties`` plus a flat ``path -> type`` view.

    ``dynamic`` False (a configured mapping with ``dynamic: false``) keeps the model
    as given: fields it does not map are never indexed.
    """

    def __init__(self, properties: Optional[Mapping[str, Any]] = None, dynamic: bool = True) -> None:
        self.properties: Dict[str, Any] = {}
        self.types: Dict[str, str] = {}
        self.ignore_above: Dict[str, Optional[int]] = {}  # keyword path -> longest value kept (None: any)
        self.dynamic = dynamic
        self.version = 0
        # Walk plans (see plan_of) per scope, for the ``types`` object they were built from.
        self._plans: Dict[Optional["FieldScope"], Dict[str, PlanNode]] = {}
        self._plans_of: Optional[Mapping[str, str]] = None
        if properties:
            self.grow_with(properties)

    def type_of(self, path: str) -> Optional[str]:
        """``text``, ``keyword``, ``long``, ``float``, ``date``, ``boolean``, ``object`` or None if unmapped."""
        return self.types.get(path)

    def grow(self, documents: Sequence[Mapping[str, Any]]) -> List[str]:
        """Map the fields these documents show first; return the new paths (empty if none)."""
        if not self.dynamic:
            return []
        if _native is not None:
            # The merge below walks every value in Python; most batches map nothing new, and the
            # native check passes over the documents that hold no field the model lacks.
            unmapped, properties = _native.unmapped, self.properties
            documents = [doc for doc in documents if _is_object(doc) and unmapped(doc, properties, INTERNAL_PREFIX)]
            if not documents:
                return []
        visible = [
            {k: v for k, v in doc.items() if not (isinstance(k, str) and k.startswith(INTERNAL_PREFIX))}
            for doc in documents
            if isinstance(doc, Mapping)
        ]
        new = mapping_for_documents(visible, self.properties)
        if not new:
            return []
        return self.grow_with(new)

    def grow_with(self, new: Mapping[str, Any]) -> List[str]:
        """Merge ``new`` properties into the model; return the paths that were not mapped before."""
        self.properties = merge_properties(self.properties, new)
        before = set(self.types)
        types: Dict[str, str] = {}
        ignore_above: Dict[str, Optional[int]] = {}
        _flatten_types(self.properties, "", types, ignore_above)
        # New objects, never changed in place: an AnalysedDoc keeps the ``types`` it was read with,
        # and the walk plans are rebuilt for a new one.
        self.types, self.ignore_above = types, ignore_above
        self.version += 1
        return sorted(set(self.types) - before)

    def to_json(self) -> Dict[str, Any]:
        """The properties, as stored."""
        return self.properties


def _flatten_types(properties: Mapping[str, Any], prefix: str, out: Dict[str, str], limits: Dict[str, Optional[int]]) -> None:
    for key, mapping in properties.items():
        path = prefix + key
        kind = mapping.get("type", OBJECT)
        if "properties" in mapping or kind == OBJECT:
            out[path] = OBJECT
            _flatten_types(mapping.get("properties", {}), path + ".", out, limits)
        else:
            out[path] = kind
            if kind == KEYWORD:
                limits[path] = mapping.get("ignore_above")
            sub = mapping.get("fields", {}).get(KEYWORD_SUFFIX[1:])
            if sub is not None:
                out[path + KEYWORD_SUFFIX] = KEYWORD
                limits[path + KEYWORD_SUFFIX] = sub.get("ignore_above")


# --- analysed documents ---------------------------------------------------------------------------

@dataclass
class AnalysedDoc:
    """One document's indexed values per field path, and the presearch keys it holds."""

    types: Mapping[str, str]
    tokens: Dict[str, Dict[str, List[int]]] = field(default_factory=dict)  # text field -> token -> positions
    keywords: Dict[str, List[str]] = field(default_factory=dict)  # keyword field -> values
    numbers: Dict[str, List[float]] = field(default_factory=dict)  # long/float field -> values
    dates: Dict[str, List[int]] = field(default_factory=dict)  # date field -> epoch millis
    booleans: Dict[str, List[bool]] = field(default_factory=dict)
    present: Set[str] = field(default_factory=set)  # fields (and their parent objects) with a value
    _any: Optional[Tuple[Dict[str, List[str]], Set[str], Set[int], Set[float], Set[bool], List[int]]] = None
    _prefixes: Optional[PrefixView] = None

    def any_field_view(self) -> Tuple[Dict[str, List[str]], Set[str], Set[int], Set[float], Set[bool], List[int]]:
        """Across all fields: token -> text fields holding it, keyword values, longs, floats, booleans, dates."""
        if self._any is None:
            token_paths: Dict[str, List[str]] = {}
            for path, postings in self.tokens.items():
                for token in postings:
                    token_paths.setdefault(token, []).append(path)
            keywords = {v for values in self.keywords.values() for v in values}
            longs: Set[int] = set()
            floats: Set[float] = set()
            for path, numbers in self.numbers.items():
                (longs if self.types.get(path) == LONG else floats).update(numbers)  # type: ignore[arg-type]
            booleans = {b for flags in self.booleans.values() for b in flags}
            dates = [d for values in self.dates.values() for d in values]
            self._any = (token_paths, keywords, longs, floats, booleans, dates)
        return self._any

    def prefix_view(self) -> PrefixView:
        """Terms of at least ``PREFIX_VIEW`` characters, each list sorted: (path -> that field's tokens and
        keyword values, the tokens of every text field, the values of every keyword field).  The terms
        with a given start are one run of a list, found by a binary search (:func:`any_with_start`).

        Made once, by the native module (``_keys.c``) when it is built, else :meth:`python_prefix_view`."""
        if self._prefixes is None:
            if _native_keys is None:
                self._prefixes = self.python_prefix_view()
            else:
                self._prefixes = _native_keys.prefix_view(self.tokens, self.keywords, PREFIX_VIEW)
        return self._prefixes

    def python_prefix_view(self) -> PrefixView:
        """:meth:`prefix_view` by the pure-Python loops (the reference of the native ones), made anew."""
        n = PREFIX_VIEW
        by_field: Dict[str, List[str]] = {}
        text: List[str] = []
        keyword: List[str] = []
        for path, postings in self.tokens.items():
            long_enough = [token for token in postings if len(token) >= n]
            if long_enough:
                by_field.setdefault(path, []).extend(long_enough)
                text.extend(long_enough)
        for path, values in self.keywords.items():
            long_enough = [value for value in values if len(value) >= n]
            if long_enough:
                by_field.setdefault(path, []).extend(long_enough)
                keyword.extend(long_enough)
        for terms in by_field.values():
            terms.sort()
        text.sort()
        keyword.sort()
        return by_field, text, keyword

    def fields_of_type(self) -> Iterable[Tuple[str, str]]:
        """(path, type) of every leaf field with a value in this document."""
        for path in self.tokens:
            yield path, TEXT
        for path in self.keywords:
            yield path, KEYWORD
        for path in self.numbers:
            yield path, self.types.get(path, LONG)
        for path in self.dates:
            yield path, DATE
        for path in self.booleans:
            yield path, BOOLEAN


def within(text: str, ignore_above: Optional[int]) -> bool:
    """Whether a keyword field with this ``ignore_above`` keeps ``text``: Elasticsearch counts Java
    characters (UTF-16 units), so a character outside the BMP counts twice."""
    if ignore_above is None:
        return True
    length = len(text)
    if length > ignore_above:
        return False
    if 2 * length <= ignore_above:
        return True  # even if every character took two units
    return length + sum(1 for c in text if c > "\uffff") <= ignore_above


def _is_object(value: Any) -> bool:
    # isinstance(x, Mapping) goes through the ABC machinery on every value (a tenth of the
    # matching time on the recent-change sample); documents decoded from JSON hold plain dicts.
    return isinstance(value, dict) or (not isinstance(value, (str, int, float, list)) and isinstance(value, Mapping))


@dataclass(frozen=True)
class FieldScope:
    """The fields the stored queries of an index read: the only ones its documents need analysed."""

    whole: FrozenSet[str]  # source paths read, everything below them included
    walk: FrozenSet[str]  # those and their ancestors (objects to descend into)

    @classmethod
    def of(cls, fields: Iterable[str]) -> "FieldScope":
        """The scope of queries reading ``fields`` (``.keyword`` sub-fields are read from their parent)."""
        whole = source_paths(fields)
        walk = set(whole)
        for path in whole:
            while "." in path:
                path = path.rsplit(".", 1)[0]
                walk.add(path)
        return cls(whole, frozenset(walk))


# --- the walk -------------------------------------------------------------------------------------

# A plan node: (kind code, path, chain: the path and its ancestors (what a value marks present),
# the text field's ``.keyword`` sub-field or None, the ``ignore_above`` of the keyword (sub-)field,
# children: key -> node of an object field or None).  Tuples: the native walk reads them by index.
PlanNode = Tuple[int, str, Tuple[str, ...], Optional[str], Optional[int], Optional[Dict[str, Any]]]
KIND_CODES = {TEXT: 1, KEYWORD: 2, LONG: 3, FLOAT: 4, DATE: 5, BOOLEAN: 6, OBJECT: 7}  # as _analysis.c's K_*
_K_TEXT, _K_KEYWORD, _K_LONG, _K_FLOAT, _K_DATE, _K_BOOLEAN, _K_OBJECT = range(1, 8)
_PLANS_KEPT = 32  # scopes change when queries come and go; older plans are dropped past this many


def plan_of(model: FieldModel, scope: Optional[FieldScope] = None) -> Dict[str, PlanNode]:
    """The walk plan of ``model`` (restricted to ``scope``): top-level key -> node, cached per scope."""
    if model._plans_of is not model.types:
        model._plans = {}
        model._plans_of = model.types
    plan = model._plans.get(scope)
    if plan is None:
        if len(model._plans) >= _PLANS_KEPT:
            model._plans.clear()
        plan = model._plans[scope] = build_plan(model.types, model.ignore_above, scope)
    return plan


def build_plan(types: Mapping[str, str], limits: Mapping[str, Optional[int]], scope: Optional[FieldScope]) -> Dict[str, PlanNode]:
    """Top-level key -> node for the fields the walk reads: every path of ``types`` it can reach (each
    key non-empty, without a dot, not internal; every ancestor an object) whose kind it indexes, and
    with a ``scope`` only the paths it names (and below those in ``scope.whole``)."""
    below: Dict[str, List[Tuple[str, str]]] = {}
    for path in types:
        parent, _, key = path.rpartition(".")
        if key and not key.startswith(INTERNAL_PREFIX):
            below.setdefault(parent, []).append((key, path))

    def children(parent: str, inner: Optional[FieldScope]) -> Dict[str, PlanNode]:
        out: Dict[str, PlanNode] = {}
        for key, path in below.get(parent, ()):
            code = KIND_CODES.get(types[path], 0)
            if code == 0 or (inner is not None and path not in inner.walk):
                continue
            sub_scope = None if inner is None or path in inner.whole else inner
            keyword: Optional[str] = None
            limit: Optional[int] = None
            if code == _K_TEXT:
                if path + KEYWORD_SUFFIX in types:
                    keyword = path + KEYWORD_SUFFIX
                    limit = limits.get(keyword)
            elif code == _K_KEYWORD:
                limit = limits.get(path)
            nested = children(path, sub_scope) if code == _K_OBJECT else None
            out[key] = (code, path, _chain(path), keyword, limit, nested)
        return out

    return children("", scope)


def _chain(path: str) -> Tuple[str, ...]:
    chain = [path]
    while "." in path:
        path = path.rsplit(".", 1)[0]
        chain.append(path)
    return tuple(chain)


def analyse_document(document: Mapping[str, Any], model: FieldModel, scope: Optional[FieldScope] = None) -> AnalysedDoc:
    """Read ``document`` as Elasticsearch indexes it with ``model`` (unmappable values left out).

    With a ``scope`` only the fields it names are read; the rest of the document is skipped.
    """
    doc = AnalysedDoc(types=model.types)
    plan = plan_of(model, scope)
    if _native is not None:
        _native.analyse(document, plan, doc.tokens, doc.keywords, doc.numbers, doc.dates, doc.booleans, doc.present)
    elif _is_object(document):
        _walk_plan(document, plan, doc, {})
    return doc


def python_analyse_document(document: Mapping[str, Any], model: FieldModel, scope: Optional[FieldScope] = None) -> AnalysedDoc:
    """:func:`analyse_document` by the pure-Python walk (the reference of the native one)."""
    doc = AnalysedDoc(types=model.types)
    if _is_object(document):
        _walk_plan(document, plan_of(model, scope), doc, {})
    return doc


def _walk_plan(obj: Mapping[str, Any], plan: Mapping[str, PlanNode], doc: AnalysedDoc, text_next: Dict[str, int]) -> None:
    for key, value in obj.items():
        node = plan.get(key)
        if node is not None:
            _add_value(value, node, doc, text_next)


def _add_value(item: Any, node: PlanNode, doc: AnalysedDoc, text_next: Dict[str, int]) -> None:
    if item is None:
        return
    if isinstance(item, list):  # nested arrays are flattened
        for sub in item:
            _add_value(sub, node, doc, text_next)
        return
    kind, path, chain, keyword_path, limit, children = node
    if kind == _K_OBJECT:
        if _is_object(item):
            _walk_plan(item, children, doc, text_next)  # type: ignore[arg-type]
        return
    if _is_object(item):
        return
    if kind == _K_TEXT:
        text = item if isinstance(item, str) else text_of(item)
        start = text_next.get(path)
        start = 0 if start is None else start + POSITION_GAP
        tokens = analyze_cached(text)
        postings = doc.tokens.setdefault(path, {})
        for offset, token in enumerate(tokens):
            postings.setdefault(token, []).append(start + offset)
        text_next[path] = start + len(tokens)
        doc.present.update(chain)
        if keyword_path is not None and within(text, limit):
            doc.keywords.setdefault(keyword_path, []).append(text)
            doc.present.add(keyword_path)
        return
    if kind == _K_KEYWORD:
        text = item if isinstance(item, str) else text_of(item)
        if within(text, limit):
            doc.keywords.setdefault(path, []).append(text)
            doc.present.update(chain)
        return
    if kind == _K_LONG:
        number: Optional[float] = parse_long(item)
    elif kind == _K_FLOAT:
        number = parse_float(item)
    elif kind == _K_DATE:
        millis = parse_date(item)
        if millis is not None:
            doc.dates.setdefault(path, []).append(millis)
            doc.present.update(chain)
        return
    elif kind == _K_BOOLEAN:
        flag = parse_boolean(item)
        if flag is not None:
            doc.booleans.setdefault(path, []).append(flag)
            doc.present.update(chain)
        return
    else:
        return
    if number is not None:
        doc.numbers.setdefault(path, []).append(number)
        doc.present.update(chain)


try:
    from beater.percolator.embedded import _analysis as _native  # type: ignore[attr-defined]  # a C extension without a stub
except ImportError:  # built without a C compiler: the pure-Python walk, same answers
    _native = None
else:
    # What the native walk leaves to Python: values of unusual types, dates not ISO 8601 in ASCII.
    _native.configure(
        text_of=text_of, parse_long=parse_long, parse_float=parse_float, parse_date=parse_date,
        parse_boolean=parse_boolean, is_object=_is_object, within=within, position_gap=POSITION_GAP,
    )

NATIVE = _native is not None

try:  # the prefix view (and keys.py's document keys)
    from beater.percolator.embedded import _keys as _native_keys  # type: ignore[attr-defined]  # a C extension without a stub
except ImportError:  # built without a C compiler: the pure-Python loops, same view
    _native_keys = None

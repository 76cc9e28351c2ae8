"""Query values on date fields: the milliseconds a date term covers, and the ``format`` of range bounds.

A date without all its parts covers the whole period it names (``2018-03-07`` is
that day): :func:`query_date_span` is its first and last millisecond.  A range's
``format`` (``a||b``) names built-in formats or simple Java patterns
(``yyyy/MM/dd``); anything else is refused (UnsupportedQuery) when the query is
compiled.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Tuple

import regex

from beater.errors import UnsupportedQuery
from beater.percolator.embedded.fields import parse_date, parse_number


def query_date_span(value: Any, fmt: Optional[str] = None) -> Optional[Tuple[int, int]]:
    """The milliseconds a date value covers: ``2018-03-07`` is the whole day."""
    low = parse_query_date(value, fmt, round_up=False)
    high = parse_query_date(value, fmt, round_up=True)
    if low is None or high is None:
        return None
    return low, high


_JAVA_TOKENS = {"yyyy": r"(?P<y>\d{4})", "uuuu": r"(?P<y>\d{4})", "MM": r"(?P<mo>\d{2})", "dd": r"(?P<d>\d{2})",
                "HH": r"(?P<h>\d{2})", "mm": r"(?P<mi>\d{2})", "ss": r"(?P<s>\d{2})", "SSS": r"(?P<ms>\d{3})"}
_FORMAT_CACHE: Dict[str, List[Any]] = {}


def date_formats(fmt: Optional[str]) -> List[Any]:
    """Parsers for a ``format`` (``a||b``): names of built-ins, or compiled simple Java patterns."""
    if fmt is None:
        return ["strict_date_optional_time", "epoch_millis"]
    if fmt in _FORMAT_CACHE:
        return _FORMAT_CACHE[fmt]
    parsers: List[Any] = []
    for name in fmt.split("||"):
        name = name.strip()
        if name in ("strict_date_optional_time", "date_optional_time", "epoch_millis", "epoch_second"):
            parsers.append(name)
            continue
        pieces = regex.findall(r"yyyy|uuuu|MM|dd|HH|mm|ss|SSS|'[^']*'|[-/:. T]|.", name)
        out = []
        for piece in pieces:
            if piece in _JAVA_TOKENS:
                out.append(_JAVA_TOKENS[piece])
            elif piece.startswith("'"):
                out.append(regex.escape(piece[1:-1]))
            elif piece in "-/:. T":
                out.append(regex.escape(piece))
            else:
                raise UnsupportedQuery(f"date format {name!r} is not supported", part=fmt)
        parsers.append(regex.compile("".join(out)))
    _FORMAT_CACHE[fmt] = parsers
    return parsers


def parse_query_date(value: Any, fmt: Optional[str], round_up: bool) -> Optional[int]:
    """A range bound or term on a date field as epoch millis (rounded up: end of the period named)."""
    if isinstance(value, bool):
        return None
    for parser in date_formats(fmt):
        if parser in ("strict_date_optional_time", "date_optional_time"):
            if isinstance(value, str):
                millis = parse_date(value, round_up=round_up, allow_epoch=False)
                if millis is not None:
                    return millis
        elif parser == "epoch_millis":
            number = parse_number(value)
            if number is not None and math.isfinite(number):
                return int(math.floor(number))
        elif parser == "epoch_second":
            number = parse_number(value)
            if number is not None and math.isfinite(number):
                return int(math.floor(number * 1000))
        elif isinstance(value, str):
            m = parser.fullmatch(value)
            if m:
                g = m.groupdict()
                text = g.get("y") or "1970"
                for key, sep in (("mo", "-"), ("d", "-"), ("h", "T"), ("mi", ":"), ("s", ":")):
                    if g.get(key) is None:
                        break
                    text += sep + g[key]
                else:
                    if g.get("ms") is not None:
                        text += "." + g["ms"]
                millis = parse_date(text, round_up=round_up)
                if millis is not None:
                    return millis
    return None

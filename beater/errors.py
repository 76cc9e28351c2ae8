"""Errors the Beater reports to its callers, each with a stable WAMP URI.

Every error carries a human message and, where there is one, the offending part
(a query fragment and its position, a line number), so that HTTP front ends can
answer 4xx with a JSON body and WAMP front ends an ``ApplicationError`` with the
same details.
"""

from __future__ import annotations

from typing import Any, Dict, Optional

from router import contract


class EstromError(Exception):
    """Base class: a problem the caller caused and can fix."""

    uri: str = contract.ERROR_INVALID_ARGUMENT
    http_status: int = 400

    def __init__(self, message: str, *, part: Optional[str] = None, position: Optional[int] = None) -> None:
        super().__init__(message)
        self.message = message
        self.part = part
        self.position = position

    def to_json(self) -> Dict[str, Any]:
        """The JSON body of an HTTP error answer (and the kwargs of a WAMP error)."""
        body: Dict[str, Any] = {"error": self.uri, "message": self.message}
        if self.part is not None:
            body["part"] = self.part
        if self.position is not None:
            body["position"] = self.position
        return body


class InvalidQuery(EstromError):
    """The query cannot be parsed, or is not a valid query for this index."""

    uri = contract.ERROR_INVALID_QUERY


class UnsupportedQuery(EstromError):
    """The query is valid Elasticsearch but the embedded percolator cannot match it faithfully."""

    uri = contract.ERROR_UNSUPPORTED_QUERY


class InvalidIndex(EstromError):
    """The index name is not acceptable."""

    uri = contract.ERROR_INVALID_INDEX


class UnknownSubscription(EstromError):
    """No registration has this subscription id."""

    uri = contract.ERROR_UNKNOWN_SUBSCRIPTION
    http_status = 404


class BackendUnavailable(EstromError):
    """The percolator backend cannot answer now; nothing was lost, retry later."""

    uri = contract.ERROR_UNAVAILABLE
    http_status = 503


class NotAllDelivered(BackendUnavailable):
    """Percolating or publishing failed part-way through a submission: its first ``delivered``
    documents were handed to the router, the rest were not (retry those)."""

    def __init__(self, reason: str, delivered: int, accepted: int) -> None:
        super().__init__(
            f"{reason}; {delivered} of the {accepted} accepted documents were delivered, "
            f"retry the others" if delivered else f"{reason}; none of the documents were delivered, retry"
        )
        self.delivered = delivered
        self.accepted = accepted
        self.retry_from: Optional[Dict[str, int]] = None  # where the undelivered ones start in the request

    def to_json(self) -> Dict[str, Any]:
        """The error body, with how many were delivered and where to resume."""
        body = super().to_json()
        body["delivered"] = self.delivered
        body["accepted"] = self.accepted
        if self.retry_from is not None:
            body["retry_from"] = self.retry_from
        return body


class LimitExceeded(EstromError):
    """Over a configured limit (``beater/limits.py``): the answer names the limit (its setting) and its value."""

    uri = contract.ERROR_LIMIT_EXCEEDED
    http_status = 413

    def __init__(self, message: str, *, limit: str, value: int, part: Optional[str] = None) -> None:
        super().__init__(message, part=part)
        self.limit = limit
        self.value = value

    def to_json(self) -> Dict[str, Any]:
        """The error body, with ``limit`` and ``value``."""
        body = super().to_json()
        body["limit"] = self.limit
        body["value"] = self.value
        return body


class QueryTooLarge(LimitExceeded, InvalidQuery):
    """A query over ``max_query_chars`` or ``max_query_clauses`` (still an InvalidQuery for callers catching that)."""

    uri = contract.ERROR_LIMIT_EXCEEDED


class TooManyRegistrations(LimitExceeded):
    """One more registration would pass ``max_registrations_per_index`` or ``max_registrations``."""

    uri = contract.ERROR_TOO_MANY_REGISTRATIONS
    http_status = 429


class DocumentRefused(EstromError):
    """The percolator refused one document of a batch (not unavailable: retrying cannot help it)."""

    uri = contract.ERROR_INVALID_DOCUMENT

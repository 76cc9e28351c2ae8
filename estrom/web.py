"""JSON answers shared by the Beater's and the Tailor's HTTP APIs."""

from __future__ import annotations

import json
from typing import Any, Dict

from twisted.web.resource import Resource
from twisted.web.server import Request

NOT_FOUND = "estrom.error.not_found"


def error_body(uri: str, message: str, **extra: Any) -> Dict[str, Any]:
    """The JSON body of an error answer."""
    return {"error": uri, "message": message, **{k: v for k, v in extra.items() if v is not None}}


def write_json(request: Request, status: int, body: Dict[str, Any]) -> None:
    """Finish ``request`` with a JSON body (no-op if the client already left)."""
    if request.finished or request._disconnected:  # type: ignore[attr-defined]
        return
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    request.write(json.dumps(body).encode() + b"\n")
    request.finish()


class NotFound(Resource):
    """Every path an API does not serve: a JSON 404 naming the path."""

    isLeaf = True

    def __init__(self, message: str = "no such endpoint") -> None:
        super().__init__()
        self.message = message

    def render(self, request: Request) -> bytes:
        """Answer 404 with a JSON body naming the path."""
        request.setResponseCode(404)
        request.setHeader(b"content-type", b"application/json")
        return json.dumps(error_body(NOT_FOUND, self.message, part=request.path.decode("utf-8", "replace"))).encode()

"""The Tailor's page: ``/`` and ``/static/<file>``, vanilla HTML/JS/CSS shipped in the package.

The files are read once from the package (``tailor/static``, package data) when the Tailor starts:
they are a few kilobytes, need no build step and no CDN, so the page works offline.  Only the files
listed here are served (no directory listing, no path walking); any other path under ``/static/``
is the Tailor's usual JSON 404.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Dict, List, Optional, Tuple

from twisted.web.resource import Resource
from twisted.web.server import Request

from estrom.web import NotFound

CONTENT_TYPES = {
    "index.html": b"text/html; charset=utf-8",
    "page.js": b"text/javascript; charset=utf-8",
    "page.css": b"text/css; charset=utf-8",
}
# The page is small and changes with the package: a browser revalidates it rather than run an old
# script against a newer Tailor, yet an unchanged file costs only a 304.
CACHE_CONTROL = b"no-cache"


def load_files() -> Dict[str, Tuple[bytes, bytes]]:
    """Each served file name → (content type, bytes), read from the installed package."""
    folder = resources.files("tailor") / "static"
    return {name: (kind, (folder / name).read_bytes()) for name, kind in CONTENT_TYPES.items()}


class StaticFile(Resource):
    """One in-memory file with its content type, an ETag and ``Cache-Control``."""

    isLeaf = True

    def __init__(self, content_type: bytes, body: bytes) -> None:
        super().__init__()
        self.content_type = content_type
        self.body = body
        self.etag = b'"%s"' % hashlib.sha256(body).hexdigest()[:16].encode()

    def render_GET(self, request: Request) -> bytes:
        """The file, or 304 when the browser's copy is current."""
        request.setHeader(b"content-type", self.content_type)
        request.setHeader(b"cache-control", CACHE_CONTROL)
        request.setHeader(b"x-content-type-options", b"nosniff")
        if request.setETag(self.etag):
            return b""  # setETag answered 304
        return self.body

    def render_HEAD(self, request: Request) -> bytes:
        """As GET; Twisted drops the body."""
        return self.render_GET(request)


class Page:
    """The page's files, looked up by the Tailor's root from the request path."""

    def __init__(self) -> None:
        self.files = {name: StaticFile(kind, body) for name, (kind, body) in load_files().items()}

    def resource_for(self, segments: List[bytes]) -> Optional[Resource]:
        """The resource for ``/`` (segments ``[b""]``) or ``/static/<name>``; None if the path is not the page's."""
        if segments in ([b""], []):
            return self.files["index.html"]
        if len(segments) == 2 and segments[0] == b"static":
            found = self.files.get(segments[1].decode("utf-8", "replace"))
            return found if found is not None else NotFound("no such static file; the page is at /")
        return None

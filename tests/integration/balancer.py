"""A round-robin TCP load balancer for the tests: what stands in front of several Tailors in production.

Like HAProxy in ``mode tcp`` with ``balance roundrobin`` and a failed
connect moving on to the next server: each new client connection goes to the
next backend, skipping ones that refuse.  Bytes are piped both ways by two
threads per connection; closing either side closes both.
"""

from __future__ import annotations

import socket
import threading
from typing import List, Optional, Tuple


class Balancer:
    """Listens on 127.0.0.1:<port>; connections go to ``backends`` in turn (a refusing one is skipped)."""

    def __init__(self, backends: List[Tuple[str, int]]) -> None:
        self.backends = backends
        self.served: List[int] = []  # the backend index of each accepted connection, in order
        self._next = 0
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _connect(self) -> Tuple[Optional[socket.socket], int]:
        with self._lock:
            start = self._next
            self._next = (self._next + 1) % len(self.backends)
        for step in range(len(self.backends)):
            index = (start + step) % len(self.backends)
            try:
                return socket.create_connection(self.backends[index], timeout=5), index
            except OSError:
                continue
        return None, -1

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server, index = self._connect()
            if server is None:
                client.close()
                continue
            server.settimeout(None)
            self.served.append(index)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        """Stop accepting (open connections end when either side closes)."""
        self._closed = True
        self._listener.close()

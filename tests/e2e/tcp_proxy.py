"""A TCP proxy on 127.0.0.1 that a test can cut and restore, to play a backend outage.

``cut()`` closes the listening socket and every live connection (both sides), so new
connections are refused and open ones fail at once; ``restore()`` listens again on the same
port. ``stall()`` plays a network partition instead: live connections are closed, new ones are
accepted and held open without an answer; ``unstall()`` closes the held ones and forwards again.
Threads: one accepting, two pumping per connection.
"""

from __future__ import annotations

import socket
import threading

from conftest import free_port

POLL_SECONDS = 0.1


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1"):
        self.target = (target_host, target_port)
        self.port = free_port()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._acceptor: threading.Thread | None = None
        self._sockets: set[socket.socket] = set()
        self._held: list[socket.socket] = []
        self._stalled = False
        self.accepted = 0

    @property
    def address(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def is_up(self) -> bool:
        return self._listener is not None

    def start(self) -> "TcpProxy":
        assert self._listener is None, "the proxy is already listening"
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        listener.settimeout(POLL_SECONDS)
        self._listener = listener
        self._acceptor = threading.Thread(target=self._accept, args=(listener,), daemon=True,
                                          name=f"tcp-proxy-{self.port}")
        self._acceptor.start()
        return self

    restore = start

    def cut(self) -> None:
        """Refuses new connections and closes every live one."""
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.close()
        if self._acceptor is not None:
            self._acceptor.join(timeout=5)
            self._acceptor = None
        with self._lock:
            live, self._sockets = self._sockets, set()
        for sock in live:
            _close(sock)

    def close(self) -> None:
        self.unstall()
        self.cut()

    def stall(self) -> None:
        """Answers nothing: live connections are closed, new ones held open and ignored."""
        self._stalled = True
        with self._lock:
            live, self._sockets = self._sockets, set()
        for sock in live:
            _close(sock)

    def unstall(self) -> None:
        self._stalled = False
        with self._lock:
            held, self._held = self._held, []
        for sock in held:
            _close(sock)

    def _accept(self, listener: socket.socket) -> None:
        while self._listener is listener:
            try:
                client, _ = listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if self._listener is not listener:  # cut meanwhile
                _close(client)
                return
            if self._stalled:
                with self._lock:
                    self._held.append(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close(client)
                continue
            client.settimeout(None)
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
                self.accepted += 1
            done = [0]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink, (client, upstream), done),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket,
              pair: tuple[socket.socket, socket.socket], done: list[int]) -> None:
        try:
            while True:
                chunk = source.recv(65536)
                if not chunk:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        # Pass the end on; the second direction to finish closes the connection.
        try:
            sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        with self._lock:
            done[0] += 1
            last = done[0] == 2
            if last:
                self._sockets.difference_update(pair)
        if last:
            for sock in pair:
                _close(sock)


def _close(sock: socket.socket) -> None:
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()

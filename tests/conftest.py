"""Shared fixtures. Tests never touch the internet: connections to anything but this machine are refused
(as if offline, so every test sees the same world), and `http_server` stands in for the real servers."""
from __future__ import annotations

import functools
import http.server
import socket
import threading
from types import SimpleNamespace

import pytest

_LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost"}


class NetworkBlocked(ConnectionRefusedError):
    """A test tried to reach the internet."""


@pytest.fixture(autouse=True)
def _no_internet(monkeypatch):
    """Refuse DNS lookups and connections to other machines; loopback (the local test server) still works."""
    real_connect, real_getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def connect(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOCAL_HOSTS:
            raise NetworkBlocked(f"tests run offline: connection to {address[0]} refused")
        return real_connect(sock, address)

    def getaddrinfo(host, *args, **kwargs):
        if host not in _LOCAL_HOSTS and host is not None:
            raise socket.gaierror(f"tests run offline: no DNS lookup of {host}")
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder, plus `/_truncated/<file>` (announces the full length, sends half, hangs up)
    and `/_status/<code>` (an HTTP error)."""

    def do_GET(self):
        if self.path.startswith("/_status/"):
            self.send_error(int(self.path.rsplit("/", 1)[1]))
        elif self.path.startswith("/_truncated/"):
            body = (self.server.root / self.path.removeprefix("/_truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
        else:
            super().do_GET()

    def log_message(self, *args):  # keep test output clean
        pass


@pytest.fixture
def http_server(tmp_path):
    """A web server on 127.0.0.1 in a thread; `.root` is the folder it serves, `.url` its base URL (ends in /)."""
    root = tmp_path / "served"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Handler, directory=str(root)))
    server.root = root
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield SimpleNamespace(root=root, url=f"http://127.0.0.1:{server.server_address[1]}/")
    server.shutdown()
    server.server_close()

"""The client's HTTP on the standard library: keep-alive per thread, idle sockets dropped,
a body cut short is told apart from an unreachable server (a real server on 127.0.0.1)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from kaos.client import transport
from kaos.client.transport import CutShort, Transport, TransportError
from tests.conftest import free_port


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    connections: set[tuple[str, int]] = set()

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        Handler.connections.add(self.client_address)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.endswith("/cut"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"10\r\n0123")  # promises 16 bytes, sends 4, hangs up
            self.wfile.flush()
            self.close_connection = True
            return
        answer = json.dumps(
            {"path": self.path, "got": json.loads(body), "author": self.headers["X-Author"]}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def server() -> Iterator[str]:
    Handler.connections = set()
    httpd = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/base"
    httpd.shutdown()
    httpd.server_close()


def test_json_params_and_headers_go_out_and_a_connection_is_reused(server):
    http = Transport(server, {"X-Author": "alice"}, timeout=5)
    for i in range(3):
        answer = http.request("POST", "/things", json={"n": i}, params={"q": "a b"}).json()
        assert answer == {"path": "/base/things?q=a+b", "got": {"n": i}, "author": "alice"}
    assert len(Handler.connections) == 1
    http.close()


def test_an_idle_connection_is_dropped_before_it_is_used_again(server, monkeypatch):
    monkeypatch.setattr(transport, "_IDLE", 0.05)
    http = Transport(server, {"X-Author": "a"}, timeout=5)
    http.request("POST", "/x", json=1)
    time.sleep(0.2)
    http.request("POST", "/x", json=2)
    assert len(Handler.connections) == 2
    http.close()


def test_each_thread_has_its_own_connection(server):
    http = Transport(server, {"X-Author": "a"}, timeout=5)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(http.request("POST", "/t", json=1).json()))
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 2 and len(Handler.connections) == 2
    http.close()


def test_a_body_cut_short_is_not_an_unreachable_server(server):
    http = Transport(server, {"X-Author": "a"}, timeout=5)
    with pytest.raises(CutShort), http.stream("POST", "/cut", json=1) as response:
        assert response.status_code == 200
        b"".join(response.iter_bytes())
    assert http.request("POST", "/after", json=1).json()["got"] == 1  # a fresh connection
    http.close()


def test_an_unreachable_server_is_a_transport_error():
    http = Transport(f"http://127.0.0.1:{free_port()}", {}, timeout=5)
    with pytest.raises(TransportError, match="ConnectionRefused"):
        http.request("GET", "/health")


def test_only_http_urls_are_taken():
    with pytest.raises(ValueError):
        Transport("ftp://example/", {}, timeout=5)

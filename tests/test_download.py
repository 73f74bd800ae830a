"""Downloads against a local HTTP server that drops connections: retried, continued, verified."""

import hashlib
import http.server
import threading

import pytest

from fromscratch.data import download
from fromscratch.errors import UserError

CONTENT = bytes(range(256)) * 400  # 102,400 bytes
SHA256 = hashlib.sha256(CONTENT).hexdigest()


class Server:
    """Serves CONTENT at /file; the first `drops` responses stop after `cut` bytes."""

    def __init__(self, drops=0, cut=30_000, ranges=True):
        self.drops, self.cut, self.ranges = drops, cut, ranges
        self.requests: list[str | None] = []  # the Range header of each request
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                asked = self.headers.get("Range")
                server.requests.append(asked)
                start = int(asked[6:-1]) if asked and server.ranges else 0
                body = CONTENT[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.drops > 0:
                    server.drops -= 1
                    body = body[: server.cut]  # then the connection closes: a dropped download
                    self.close_connection = True
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/file"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve():
    servers = []

    def start(**options):
        servers.append(Server(**options))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def fetch(server, path, **options):
    return download(server.url, path, SHA256, progress=False, retry_wait=0, **options)


def test_a_dropped_connection_is_continued_with_a_range_request(tmp_path, serve):
    server = serve(drops=2, cut=30_000)
    path = fetch(server, tmp_path / "data.bin")
    assert path.read_bytes() == CONTENT
    assert server.requests == [None, "bytes=30000-", "bytes=60000-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.bin"]  # no .part left


def test_a_server_without_range_support_sends_it_all_again(tmp_path, serve):
    server = serve(drops=1, ranges=False)
    assert fetch(server, tmp_path / "data.bin").read_bytes() == CONTENT
    assert len(server.requests) == 2


def test_a_part_file_from_an_interrupted_run_is_continued(tmp_path, serve):
    (tmp_path / ".data.bin.part").write_bytes(CONTENT[:50_000])
    server = serve()
    assert fetch(server, tmp_path / "data.bin").read_bytes() == CONTENT
    assert server.requests == ["bytes=50000-"]


def test_giving_up_is_a_user_error_and_leaves_no_cached_file(tmp_path, serve):
    server = serve(drops=10)
    with pytest.raises(UserError, match="after 3 attempts.*closed after"):
        fetch(server, tmp_path / "data.bin")
    assert not (tmp_path / "data.bin").exists()
    assert len(server.requests) == 3
    assert (tmp_path / ".data.bin.part").stat().st_size == 90_000  # kept, to continue later
    assert fetch(serve(), tmp_path / "data.bin").read_bytes() == CONTENT


def test_a_wrong_checksum_is_refused_and_nothing_is_cached(tmp_path, serve):
    server = serve()
    with pytest.raises(UserError, match="SHA-256"):
        download(server.url, tmp_path / "data.bin", "0" * 64, progress=False, retry_wait=0)
    assert list(tmp_path.iterdir()) == []
    assert len(server.requests) == 3  # each attempt started from the beginning


def test_a_cached_file_is_used_without_the_network(tmp_path, serve):
    server = serve()
    (tmp_path / "data.bin").write_bytes(CONTENT)
    assert fetch(server, tmp_path / "data.bin").read_bytes() == CONTENT
    assert server.requests == []

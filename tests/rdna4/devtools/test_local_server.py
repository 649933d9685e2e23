"""The test server launcher: ports clear of the ephemeral range, and a restart on a bind race."""

from __future__ import annotations

import random
import socket
import textwrap
from pathlib import Path

import pytest
import requests
from sglang.srt.rdna4.devtools import local_server
from sglang.srt.rdna4.devtools.local_server import Server, ServerStartError, free_port

# Binds --port like uvicorn does, after start-up: exits 3 with uvicorn's message when taken.
FAKE_SERVER = textwrap.dedent('''
    import http.server, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])
    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    try:
        httpd = http.server.HTTPServer(("127.0.0.1", port), Health)
    except OSError as err:
        print(f"ERROR:    [Errno 98] error while attempting to bind on address ('127.0.0.1', {port}): address already in use", flush=True)
        sys.exit(3)
    httpd.serve_forever()
''')


def test_free_port_avoids_ephemeral_range_and_frees_derived_block():
    low, _ = local_server._ephemeral_range()
    rng = random.Random(0)
    for _ in range(20):
        port = free_port(rng)
        block = [port + off for off in local_server._DERIVED_PORT_OFFSETS]
        if low > 12000:
            assert max(block) < low, (port, low)
        assert all(local_server._bindable(p) for p in block)


def test_free_port_skips_a_taken_port(monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        taken = held.getsockname()[1]
        monkeypatch.setattr(local_server, "_port_window", lambda: (1024, 65000))
        calls = []

        class Scripted(random.Random):
            """The taken port first, then ordinary random picks (any fixed second pick may be
            busy while other tests run servers)."""

            def randrange(self, lo, hi):
                calls.append(lo)
                return taken if len(calls) == 1 else super().randrange(lo, hi)

        assert free_port(Scripted(0)) != taken
        assert len(calls) >= 2


@pytest.fixture
def fake_launch(tmp_path, monkeypatch) -> Path:
    script = tmp_path / "fake_server.py"
    script.write_text(FAKE_SERVER)
    monkeypatch.setattr(Server, "launch", (str(script),))
    return tmp_path


def test_server_restarts_on_a_new_port_when_its_port_is_taken(fake_launch, monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        real_free_port = local_server.free_port
        ports = iter([taken])
        monkeypatch.setattr(local_server, "free_port", lambda: next(ports, None) or real_free_port())
        with Server(fake_launch, startup_timeout=30) as srv:
            assert srv.port != taken
            assert requests.get(f"{srv.url}/health", timeout=5).status_code == 200


def test_server_gives_up_after_repeated_port_conflicts(fake_launch, monkeypatch):
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        taken = held.getsockname()[1]
        monkeypatch.setattr(local_server, "free_port", lambda: taken)
        with pytest.raises(ServerStartError, match="address already in use") as err:
            Server(fake_launch, startup_timeout=30).__enter__()
        assert err.value.port_conflict


def test_other_start_failures_are_not_retried(tmp_path, monkeypatch):
    script = tmp_path / "broken.py"
    script.write_text("import sys; print('no model here', flush=True); sys.exit(1)")
    monkeypatch.setattr(Server, "launch", (str(script),))
    starts = []
    real_free_port = local_server.free_port
    monkeypatch.setattr(local_server, "free_port", lambda: starts.append(1) or real_free_port())
    with pytest.raises(ServerStartError, match="no model here") as err:
        Server(tmp_path, startup_timeout=30).__enter__()
    assert not err.value.port_conflict and len(starts) == 1

"""The XML-RPC client against a real supervisord: unix socket, HTTP with credentials, outages."""

from __future__ import annotations

import socket
import sys
import threading
from pathlib import Path

import pytest

from autoscaler.supervisord.rpc import SupervisorClient, SupervisorUnavailable
from autoscaler.testing.stack import Supervisord


def test_unix_socket(supervisord: Supervisord) -> None:
    client = SupervisorClient(supervisord.url)
    assert client.state() == "RUNNING"
    assert client.processes() == []


def test_http_with_credentials(tmp_path: Path) -> None:
    from tests.conftest import require_binary

    require_binary("supervisord")
    server = Supervisord(tmp_path / "sv", username="admin", password="s3cret").start()
    try:
        (server.include_dir / "p.conf").write_text(
            f'[program:p_00]\ncommand={sys.executable} -c "import time; time.sleep(60)"\n'
            "startsecs=0\n"
        )
        good = SupervisorClient(server.http_url, username="admin", password="s3cret")
        good.call("reloadConfig")
        good.call("addProcessGroup", "p_00")
        names = [p.name for p in good.processes()]
        assert names == ["p_00"]
        bad = SupervisorClient(server.http_url, username="admin", password="wrong")
        with pytest.raises(SupervisorUnavailable) as caught:
            bad.state()
        assert "authentication failed" in str(caught.value)
        assert "wrong" not in str(caught.value)
    finally:
        server.stop()


def test_down_is_a_clear_error(tmp_path: Path) -> None:
    client = SupervisorClient(f"unix://{tmp_path}/nothing.sock")
    with pytest.raises(SupervisorUnavailable, match="unreachable"):
        client.state()


def test_a_hung_server_times_out(tmp_path: Path) -> None:
    path = str(tmp_path / "hang.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(1)
    accepted: list[socket.socket] = []
    threading.Thread(target=lambda: accepted.append(listener.accept()[0]), daemon=True).start()
    client = SupervisorClient(f"unix://{path}", timeout_s=0.5)
    with pytest.raises(SupervisorUnavailable, match=r"timed out|TimeoutError"):
        client.state()
    listener.close()

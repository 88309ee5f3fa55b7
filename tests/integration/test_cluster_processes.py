"""The process bookkeeping under the local cluster: pid files, stop, orphans, port collisions."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster import controlplane
from tests.cluster.controlplane import ControlPlane
from tests.cluster.procs import ProcessGroup, pid_runs

SLEEP = "/bin/sleep"


def _gone(pid: int, exe: str, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while pid_runs(pid, exe):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_stop_all_from_another_handle_stops_newest_first(tmp_path: Path) -> None:
    group = ProcessGroup(tmp_path / "run", tmp_path / "logs")
    first = group.start("first", [SLEEP, "60"])
    second = group.start("second", [SLEEP, "60"])
    assert first.running and second.running
    other = ProcessGroup(tmp_path / "run", tmp_path / "logs")  # as `down` does, from elsewhere
    assert other.stop_all() == ["second", "first"]
    assert _gone(first.pid, first.exe) and _gone(second.pid, second.exe)
    assert list((tmp_path / "run").iterdir()) == []
    group.stop_all()  # reaps our children; nothing left to stop


def test_a_recycled_pid_is_never_signalled(tmp_path: Path) -> None:
    """A pid file whose pid now belongs to another program is dropped, not killed."""
    bystander = subprocess.Popen([SLEEP, "60"])
    try:
        (tmp_path / "run").mkdir()
        (tmp_path / "run" / "etcd.pid").write_text(
            json.dumps({"pid": bystander.pid, "exe": "/usr/bin/etcd-not-this", "seq": 1,
                        "log": str(tmp_path / "etcd.log")})
        )  # fmt: skip
        assert ProcessGroup(tmp_path / "run", tmp_path / "logs").stop_all() == []
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait()


def test_children_die_with_a_killed_parent(tmp_path: Path) -> None:
    """die_with_parent: a SIGKILLed test session leaves no component running."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from tests.cluster.procs import ProcessGroup\n"
        "d = Path(sys.argv[1])\n"
        "g = ProcessGroup(d / 'run', d / 'logs', die_with_parent=True)\n"
        f"print(g.start('sleeper', ['{SLEEP}', '60']).pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(controlplane.REPO_ROOT),
    )
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    assert pid_runs(child, SLEEP)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    assert _gone(child, SLEEP)


def test_start_retries_when_a_port_is_taken_before_the_bind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        taken = busy.getsockname()[1]
        calls: list[int] = []
        real = controlplane.free_port

        def racy_free_port(host: str = "127.0.0.1") -> int:
            calls.append(1)
            return taken if len(calls) == 3 else real(host)  # 3rd call: the apiserver's port

        monkeypatch.setattr(controlplane, "free_port", racy_free_port)
        plane = ControlPlane(tmp_path / "cp", die_with_parent=True)
        try:
            kube = plane.start()
            assert not kube.server.endswith(f":{taken}")
            assert kube.kubectl("get", "--raw", "/readyz").stdout == "ok"
            assert len(calls) > 3
        finally:
            plane.stop()
    assert os.listdir(tmp_path / "cp" / "run") == []

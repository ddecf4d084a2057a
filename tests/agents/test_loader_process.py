"""The warehouse loader's process, as the worker starts and watches it: it goes when the worker
goes, and comes back when it stops on its own. No broker is needed for either (its consumer only
waits), so none is started."""
import os
import signal
import subprocess
import sys
import textwrap

from streams.agents import loader_process, metrics
from streams.agents.loader_process import PART, LoaderProcess
from streams.config import Settings
from streams.testing.firm import eventually


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is gone too
        return stat.read().split(")")[-1].split()[0] != "Z"


def test_the_loader_stops_when_the_worker_that_started_it_is_killed(tmp_path):
    worker = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from streams.agents.loader_process import LoaderProcess
        from streams.config import Settings
        loader = LoaderProcess(Settings())
        loader.start()
        print(loader.process.pid, flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "Q2C_HOME": str(tmp_path), "Q2C_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    try:
        child = int(worker.stdout.readline())
        assert _alive(child)
        worker.send_signal(signal.SIGKILL)  # as a crash would: no chance to stop it
        worker.wait(10)
        eventually(lambda: not _alive(child), timeout=15, what="the loader gone with its worker")
    finally:
        worker.kill()


def test_a_loader_that_stops_is_started_again_and_the_worker_degraded_meanwhile(tmp_path, monkeypatch):
    monkeypatch.setenv("Q2C_HOME", str(tmp_path))
    monkeypatch.setenv("Q2C_KAFKA_BOOTSTRAP", "127.0.0.1:1")
    monkeypatch.setattr(loader_process, "RESTART_S", 1.0)
    metrics.HEALTH.set("running")
    loader = LoaderProcess(Settings())
    loader.start()
    try:
        first = loader.process.pid
        os.kill(first, signal.SIGKILL)
        health = eventually(lambda: (h := metrics.HEALTH.as_dict())["state"] == "degraded" and h, timeout=30,
                            what="the worker degraded by the stopped loader")
        assert health["reason"] == f"{PART}: stopped (exit code -9); starting it again"
        eventually(lambda: loader.process.pid != first and _alive(loader.process.pid), timeout=30,
                   what="the loader started again")
        assert metrics.HEALTH.as_dict()["state"] == "running"
    finally:
        loader.stop()
    assert not loader.process.is_alive()

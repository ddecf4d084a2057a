"""PID files name a process by its id and its start time: a stale file (a reboot, an id reused)
names no process of ours, and a stop signals nothing."""
import subprocess
import sys

import psutil

from streams.stack.process import pid_of, spawn, stop


def test_a_started_process_is_found_by_its_file_and_stopped(tmp_path):
    pidfile = tmp_path / "part.pid"
    pid = spawn([sys.executable, "-c", "import time; time.sleep(60)"], pidfile, tmp_path / "part.log")
    pid_text, started = pidfile.read_text().split()
    assert int(pid_text) == pid and abs(float(started) - psutil.Process(pid).create_time()) < 0.01
    assert pid_of(pidfile) == pid
    assert stop(pidfile, timeout=10)
    assert pid_of(pidfile) is None and not pidfile.exists()


def test_a_file_naming_a_process_started_at_another_time_is_stale_and_nothing_is_signalled(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # not ours: its id reused, say
    try:
        pidfile = tmp_path / "part.pid"
        pidfile.write_text(f"{other.pid} {psutil.Process(other.pid).create_time() - 3600:.3f}\n")
        assert pid_of(pidfile) is None
        assert stop(pidfile, timeout=2) is False
        assert other.poll() is None  # still running: it was not signalled
    finally:
        other.kill()
        other.wait()


def test_a_file_of_an_earlier_version_holds_the_id_only(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile = tmp_path / "part.pid"
        pidfile.write_text(str(other.pid))
        assert pid_of(pidfile) == other.pid
    finally:
        other.kill()
        other.wait()
    assert pid_of(pidfile) is None

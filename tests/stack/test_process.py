"""PID files name a process by its id and its start time: a stale file (a reboot, an id reused)
names no process of ours, and a stop signals nothing; a wall clock stepped meanwhile changes
nothing."""
import subprocess
import sys
import time

import psutil
import psutil._pslinux as psutil_linux  # the embedded stack runs on Linux

from streams.stack.process import pid_of, spawn, stop


def test_a_started_process_is_found_by_its_file_and_stopped(tmp_path):
    pidfile = tmp_path / "part.pid"
    pid = spawn([sys.executable, "-c", "import time; time.sleep(60)"], pidfile, tmp_path / "part.log")
    pid_text, started = pidfile.read_text().split()
    since_boot = psutil.Process(pid).create_time() - psutil.boot_time()
    assert int(pid_text) == pid and abs(float(started) - since_boot) < 0.01
    assert pid_of(pidfile) == pid
    assert stop(pidfile, timeout=10)
    assert pid_of(pidfile) is None and not pidfile.exists()


def test_a_file_naming_a_process_started_at_another_time_is_stale_and_nothing_is_signalled(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])  # not ours: its id reused, say
    try:
        pidfile = tmp_path / "part.pid"
        since_boot = psutil.Process(other.pid).create_time() - psutil.boot_time()
        pidfile.write_text(f"{other.pid} {since_boot - 3600:.3f}\n")
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


def test_a_process_is_still_found_and_stopped_after_the_wall_clock_is_stepped(tmp_path, monkeypatch):
    """NTP, or a virtual machine resumed from a snapshot, steps the clock: the kernel's boot time
    (``btime`` in /proc/stat) moves with it, and so does every wall-clock start time psutil gives.
    The step is simulated where psutil reads that boot time on Linux, the one place it enters."""
    pidfile = tmp_path / "part.pid"
    pid = spawn([sys.executable, "-c", "import time; time.sleep(60)"], pidfile, tmp_path / "part.log")
    before = psutil.Process(pid).create_time()
    stepped = psutil_linux.boot_time() + 37.0
    monkeypatch.setattr(psutil_linux, "boot_time", lambda: stepped)
    assert abs(psutil.Process(pid).create_time() - before - 37.0) < 0.01  # the step is seen
    assert pid_of(pidfile) == pid
    assert stop(pidfile, timeout=10)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_a_file_of_an_earlier_version_holds_a_wall_clock_start_time(tmp_path):
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pidfile = tmp_path / "part.pid"
        pidfile.write_text(f"{other.pid} {psutil.Process(other.pid).create_time():.3f}\n")
        assert pid_of(pidfile) == other.pid
    finally:
        other.kill()
        other.wait()


def test_a_process_whose_first_thread_ended_runs_until_its_last_thread_does(tmp_path):
    """A JVM stopping: its main thread ends while its shutdown runs in others, its ports still
    open. Linux then shows the process as a zombie; it is still running until its last thread
    ends, and a stop waits for that (else a restart finds its ports taken)."""
    script = tmp_path / "first_thread_ends.py"
    script.write_text(
        "import ctypes, os, threading, time\n"
        "threading.Thread(target=lambda: (time.sleep(3), os._exit(0))).start()\n"
        "time.sleep(0.2)\n"
        "ctypes.CDLL(None).pthread_exit(None)  # the main thread ends; the other goes on\n")
    pidfile = tmp_path / "part.pid"
    pid = spawn([sys.executable, str(script)], pidfile, tmp_path / "part.log")
    time.sleep(1)
    process = psutil.Process(pid)
    assert process.status() == psutil.STATUS_ZOMBIE and process.num_threads() == 2
    assert pid_of(pidfile) == pid
    time.sleep(3)
    assert pid_of(pidfile) is None

"""Start, find and stop the stack's background processes by PID file.

A PID file holds the process's id and when it started, in seconds since boot: after a reboot,
or once the process is gone and its id reused, the file names another process, and a stop must
not signal it. A PID whose process started at another time is not ours. Seconds since boot, not
the wall-clock start time, because the wall clock can be stepped (NTP, a virtual machine resumed
from a snapshot), and psutil's ``create_time`` moves with it: a running part would then look
gone, its restart find its ports taken, and a stop leave it running."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import psutil


class StackError(RuntimeError):
    """A part of the embedded stack could not be started or reached; the message says which."""


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _listening(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(1.0)
        return sock.connect_ex((host, port)) == 0


CLOSING_WAIT_S = 30.0


def require_free_port(part: str, host: str, port: int) -> None:
    """A port something listens on is taken. One that nothing listens on but that cannot be bound
    yet holds the closing connections of a part just stopped (a JVM killed while Prometheus kept
    a connection to its metrics open): it is waited for, ``CLOSING_WAIT_S`` at most."""
    deadline = time.monotonic() + CLOSING_WAIT_S
    while not port_is_free(host, port) and not _listening(host, port) and time.monotonic() < deadline:
        time.sleep(0.25)
    if not port_is_free(host, port):
        raise StackError(
            f"{part}: port {host}:{port} is already taken{_holder(port)}; stop what uses it or choose another "
            f"port (see `q2c settings` for the Q2C_*_PORT settings)"
        )


def _holder(port: int) -> str:
    """Who holds ``port``, in words (" by pid 12 (java), listening"), as far as this user may see."""
    try:
        held = [c for c in psutil.net_connections(kind="inet") if c.laddr and c.laddr.port == port]
    except (psutil.AccessDenied, OSError):
        return ""
    if not held:
        return ""
    held.sort(key=lambda c: (c.status != psutil.CONN_LISTEN, c.pid is None))
    parts = []
    for conn in held[:3]:
        try:
            who = f"pid {conn.pid} ({psutil.Process(conn.pid).name()})" if conn.pid else "no process (closing)"
        except psutil.Error:
            who = f"pid {conn.pid} (gone)"
        parts.append(f"{who}, {conn.status.lower()}")
    return " by " + "; ".join(parts)


def pid_of(pidfile: Path) -> int | None:
    """The process the file names, if it still runs and is the one that was started."""
    try:
        fields = pidfile.read_text().split()
        pid = int(fields[0])
        started = float(fields[1]) if len(fields) > 1 else None  # files of earlier versions hold the id only
    except (FileNotFoundError, ValueError, IndexError):
        return None
    try:
        process = psutil.Process(pid)
        # a zombie has exited, unless only its first thread has: a JVM's main thread can end
        # while its shutdown still runs in others, its ports still open
        if process.status() == psutil.STATUS_ZOMBIE and _threads(process) <= 1:
            return None
        if started is not None and abs(_started(process, epoch=started > EPOCH_FLOOR) - started) > START_TOLERANCE_S:
            return None  # the id was reused: another process
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        return pid
    return pid


def _threads(process: psutil.Process) -> int:
    try:
        return process.num_threads()
    except psutil.Error:  # a zombie's thread count may not be readable: it has exited
        return 0


START_TOLERANCE_S = 0.05  # a start time is counted in clock ticks (1/100 s)
EPOCH_FLOOR = 1e8  # a file of an earlier version holds a wall-clock start time, far above any uptime


def _started(process: psutil.Process, epoch: bool = False) -> float:
    """When the process started, in seconds since boot (psutil adds the boot time to the ticks
    the kernel counts; taking it off again leaves what no clock step moves)."""
    return process.create_time() if epoch else process.create_time() - psutil.boot_time()


def write_pidfile(pidfile: Path, pid: int) -> None:
    try:
        started = _started(psutil.Process(pid))
    except psutil.NoSuchProcess:  # already gone: nothing to find later
        started = 0.0
    pidfile.write_text(f"{pid} {started:.3f}\n")


def spawn(
    argv: Sequence[str],
    pidfile: Path,
    logfile: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> int:
    """Start ``argv`` detached in its own session; its output goes to ``logfile``."""
    logfile.parent.mkdir(parents=True, exist_ok=True)
    pidfile.parent.mkdir(parents=True, exist_ok=True)
    with open(logfile, "ab") as log:
        proc = subprocess.Popen(
            list(argv),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            cwd=cwd,
            start_new_session=True,
        )
    write_pidfile(pidfile, proc.pid)
    return proc.pid


def stop(pidfile: Path, timeout: float = 30.0) -> bool:
    """SIGTERM the process group, SIGKILL after ``timeout``. True if something was running."""
    pid = pid_of(pidfile)
    if pid is None:
        pidfile.unlink(missing_ok=True)
        return False
    _signal_group(pid, signal.SIGTERM)
    if not _gone_within(pidfile, timeout):
        kill_hard(pidfile)
    pidfile.unlink(missing_ok=True)
    return True


def kill_hard(pidfile: Path) -> None:
    """``kill -9`` the process group, as a crash would (fault tests; a stop that timed out), and
    wait for it to be gone, 10 s at most."""
    pid = pid_of(pidfile)
    if pid is not None:
        _signal_group(pid, signal.SIGKILL)
        _gone_within(pidfile, 10)


def _gone_within(pidfile: Path, seconds: float) -> bool:
    """Whether the process the file names is gone within ``seconds``."""
    deadline = time.monotonic() + seconds
    while pid_of(pidfile) is not None:
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)
    return True


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except ProcessLookupError:
        pass


def wait_until(what: str, check: Callable[[], bool], timeout: float, logfile: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.3)
    tail = ""
    if logfile and logfile.exists():
        tail = "\n--- last lines of " + str(logfile) + " ---\n" + "\n".join(
            logfile.read_text(errors="replace").splitlines()[-25:]
        )
    raise StackError(f"{what} did not become healthy within {timeout:.0f}s{tail}")


class BackgroundPart:
    """A part of the stack that runs as one background process: its PID file, its log, and the
    start (ports checked first, then healthy or a clear error) and stop every such part shares."""

    name = "part"
    stop_timeout = 60.0

    def __init__(self, settings) -> None:
        self.s = settings
        self.pidfile = settings.run_dir / f"{self.name}.pid"
        self.log = settings.log_dir / f"{self.name}.log"

    def launch(self, argv: Sequence[str], ports: Mapping[str, int], timeout: float,
               env: Mapping[str, str] | None = None, ready: Callable[[], bool] | None = None) -> None:
        if pid_of(self.pidfile):
            return
        for label, port in ports.items():
            require_free_port(label, self.s.host, port)
        spawn(argv, self.pidfile, self.log, env=env)
        wait_until(self.label, ready or self.healthy, timeout, self.log)

    @property
    def label(self) -> str:
        return self.name

    def healthy(self) -> bool:  # pragma: no cover - each part says
        raise NotImplementedError

    def stop(self) -> bool:
        return stop(self.pidfile, timeout=self.stop_timeout)

"""The warehouse loader (``warehouse_loader.py``) in a process of its own, started and watched by
the worker.

In a thread of the worker the loader shared the interpreter lock with the Faust agents: py-spy
(``--gil``) during a catch-up put 12.9 % of the worker's busy time in it, most of it decoding the
canonical events' Avro. Alone, it runs beside them. Catching up on 60,420 changes, alternating the
two, the ERP was complete at 1,035 and 1,288 changes/s with the loader in a thread, 1,415 and 1,492
with it in a process of its own.

It is spawned (a fresh interpreter: nothing of Faust's event loop or threads is forked), dies with
the worker (SIGTERM ends its batch; it also stops once its parent is gone, as after a ``kill -9``
of the worker alone), and is started again if it stops. Its metrics reach the worker's
``/metrics`` through prometheus_client's multiprocess mode (``metrics.py``); its health reaches
``/health`` as a part of the worker's, through a pipe.
"""
from __future__ import annotations

import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
from multiprocessing.connection import Connection
from typing import Any

from streams.agents import metrics
from streams.config import Settings

log = logging.getLogger(__name__)

PART = "warehouse loader"  # its name in the worker's health
RESTART_S = 5.0            # before a loader that stopped is started again
STOP_S = 30.0              # for its last batch, before it is killed


class LoaderProcess:
    def __init__(self, settings: Settings):
        self.s = settings
        self.stopping = threading.Event()
        self.process: Any = None
        self.health: Connection | None = None
        self.watcher: threading.Thread | None = None

    def start(self) -> None:
        self.stopping.clear()
        self._spawn()
        self.watcher = threading.Thread(target=self._watch, name="warehouse-loader-watch", daemon=True)
        self.watcher.start()

    def stop(self) -> None:
        self.stopping.set()
        process = self.process
        if process is not None and process.is_alive():
            process.terminate()  # SIGTERM: it ends its batch and commits
            process.join(STOP_S)
            if process.is_alive():
                log.warning("the warehouse loader did not stop within %.0fs; killed", STOP_S)
                process.kill()
                process.join(5)
        if self.watcher is not None:
            self.watcher.join(5)

    def _spawn(self) -> None:
        context = multiprocessing.get_context("spawn")
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=main, args=(self.s, sender, os.getpid()), name="q2c-warehouse-loader", daemon=True)
        process.start()
        sender.close()  # the child's end: the pipe reads as closed once the child is gone
        self.process, self.health = process, receiver
        metrics.HEALTH.set("running", part=PART)
        log.info("the warehouse loader runs in process %d", self.process.pid)

    def _watch(self) -> None:
        """Its health into the worker's; started again when it stops."""
        while not self.stopping.is_set():
            try:
                if self.health.poll(1.0):
                    state, reason = self.health.recv()
                    metrics.HEALTH.set(state, reason, part=PART)
                    continue
            except (EOFError, OSError):  # the child is gone
                self.process.join(5)
            if self.process.is_alive() or self.stopping.is_set():
                continue
            code = self.process.exitcode
            log.error("the warehouse loader stopped (exit code %s); starting it again in %.0fs", code, RESTART_S)
            metrics.HEALTH.set("degraded", f"stopped (exit code {code}); starting it again", part=PART)
            if os.environ.get(metrics.MULTIPROCESS_DIR):
                from prometheus_client import multiprocess
                multiprocess.mark_process_dead(self.process.pid)
            if not self.stopping.wait(RESTART_S):
                self._spawn()


class _ForwardedHealth:
    """``metrics.HEALTH`` in the loader's process: what it reports goes to the worker."""

    def __init__(self, pipe: Connection):
        self.pipe, self.lock = pipe, threading.Lock()

    def set(self, state: str, reason: str = "", part: str | None = None) -> None:
        with self.lock:
            try:
                self.pipe.send((state, reason))
            except OSError:  # the worker is gone: so is the reason to say anything
                pass


def main(settings: Settings, health: Connection, parent: int) -> None:
    """The loader's process: load until SIGTERM or until the worker that started it is gone."""
    from streams.agents.warehouse_loader import WarehouseLoader
    from streams.agents.worker import GC_THRESHOLDS

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="[%(asctime)s] [%(process)d] [%(levelname)s] [warehouse loader] %(message)s")
    metrics.HEALTH = _ForwardedHealth(health)  # type: ignore[assignment]
    loader = WarehouseLoader(settings)
    signal.signal(signal.SIGTERM, lambda *_: loader.stopping.set())
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a ^C reaches the worker, which stops this in turn

    def orphaned() -> None:
        while not loader.stopping.wait(1.0):
            if os.getppid() != parent:
                log.warning("the worker is gone; stopping")
                loader.stopping.set()

    threading.Thread(target=orphaned, name="parent-watch", daemon=True).start()
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
    loader.run()

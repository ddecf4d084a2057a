"""The Debezium connectors (their configs in ``connect/``) and Kafka Connect's REST API: create or
update them, and read their state. Used by ``q2c connectors apply|status`` against any Connect
cluster, by the embedded stack, and by compose's init service."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from streams import resources
from streams.errors import Unreachable


class ConnectorError(RuntimeError):
    """Kafka Connect refused a connector, or one failed; the message says which and why."""


def _request(method: str, connect_url: str, path: str, **options) -> httpx.Response:
    """One call to Connect's REST API; Connect not answering is ``Unreachable``, saying where."""
    try:
        return httpx.request(method, f"{connect_url}{path}", **options)
    except httpx.TransportError as exc:
        raise Unreachable(f"Kafka Connect at {connect_url} unreachable: {exc}") from exc


def connector_files() -> list[Path]:
    return sorted(resources.path("connect").glob("*.json"))


@dataclass(frozen=True)
class Applied:
    name: str
    action: str  # created, updated, unchanged


def apply(connect_url: str, files: list[Path] | None = None) -> list[Applied]:
    """PUT each connector's config (idempotent: Connect restarts a connector only if it changed)."""
    done = []
    for path in files if files is not None else connector_files():
        spec = json.loads(path.read_text())
        name, config = spec["name"], spec["config"]
        current = _request("GET", connect_url, f"/connectors/{name}/config", timeout=10)
        if current.status_code == 200 and {k: str(v) for k, v in current.json().items() if k != "name"} == {
                k: str(v) for k, v in config.items() if k != "name"}:
            done.append(Applied(name, "unchanged"))
            continue
        response = _request("PUT", connect_url, f"/connectors/{name}/config", json=config, timeout=30)
        if response.status_code >= 300:
            raise ConnectorError(f"Kafka Connect refused connector {name}: {response.text[:2000]}")
        done.append(Applied(name, "created" if response.status_code == 201 else "updated"))
    return done


@dataclass(frozen=True)
class State:
    name: str
    state: str                            # RUNNING, PAUSED, FAILED, UNASSIGNED, RESTARTING, STOPPED
    tasks: tuple[tuple[int, str, str], ...]  # (id, state, the start of the trace of a failed one)

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(t[1] == "RUNNING" for t in self.tasks)


def states(connect_url: str) -> list[State]:
    response = _request("GET", connect_url, "/connectors", params={"expand": "status"}, timeout=10)
    response.raise_for_status()
    out = []
    for name, info in sorted(response.json().items()):
        status = info.get("status") or {}
        tasks = tuple(sorted((int(t["id"]), t["state"], (t.get("trace") or "").splitlines()[0][:300] if t.get("trace") else "")
                             for t in status.get("tasks", [])))
        out.append(State(name, (status.get("connector") or {}).get("state", "UNKNOWN"), tasks))
    return out


def wait_running(connect_url: str, names: list[str], timeout: float = 120.0) -> None:
    """Until every named connector and its tasks run; a FAILED task is an error at once."""
    deadline = time.monotonic() + timeout
    while True:
        found = {s.name: s for s in states(connect_url)}
        for name in names:
            failed = [t for t in found[name].tasks if t[1] == "FAILED"] if name in found else []
            if failed:
                raise ConnectorError(f"connector {name}: task {failed[0][0]} failed: {failed[0][2]}")
        if all(name in found and found[name].running for name in names):
            return
        if time.monotonic() > deadline:
            raise ConnectorError(f"connectors not running after {timeout:.0f}s: "
                                 + ", ".join(f"{n} {found[n].state if n in found else 'absent'}" for n in names))
        time.sleep(0.5)

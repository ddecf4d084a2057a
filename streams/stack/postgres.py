"""The stack's PostgreSQL: one cluster (Debian's server binaries) with the client firm's
databases, created from the project's copies of their DDL, and ``wal_level=logical``."""
from __future__ import annotations

import os
import pwd
import secrets
import shutil
import subprocess
from pathlib import Path

import psycopg

from streams import resources, sources
from streams.config import ALL_DATABASES, Settings
from streams.sinks import warehouse
from streams.stack.process import StackError, require_free_port, wait_until

SYSTEMS_DIR = resources.path("stack", "systems")
SERVER_BIN_CANDIDATES = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
RUN_AS = "postgres"  # initdb refuses root: as root, run the cluster as Debian's postgres user


def _bin(name: str) -> str:
    for directory in SERVER_BIN_CANDIDATES:
        if (directory / name).exists():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        raise StackError(f"PostgreSQL: {name} not found; install Debian's postgresql package")
    return found


def _as_cluster_owner(argv: list[str]) -> list[str]:
    if os.geteuid() == 0:
        return ["runuser", "-u", RUN_AS, "--", *argv]
    return argv


def _chown_to_owner(path: Path) -> None:
    if os.geteuid() == 0:
        owner = pwd.getpwnam(RUN_AS)
        for p in [path, *path.rglob("*")]:
            os.chown(p, owner.pw_uid, owner.pw_gid)


class Postgres:
    name = "postgres"

    def __init__(self, settings: Settings):
        self.s = settings
        self.data = settings.home_dir / "pg" / "data"
        self.sock = settings.home_dir / "pg" / "sock"
        self.log = settings.log_dir / "postgres.log"

    def _ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        argv = _as_cluster_owner([_bin("pg_ctl"), "-D", str(self.data), *args])
        return subprocess.run(argv, capture_output=True, text=True, check=check)

    def init(self) -> None:
        if (self.data / "PG_VERSION").exists():
            return
        self.s.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        password_file = self.s.secrets_dir / "pg_password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(24))
            password_file.chmod(0o600)
        base = self.data.parent
        base.mkdir(parents=True, exist_ok=True)
        self.sock.mkdir(parents=True, exist_ok=True)
        pwfile = base / ".initpw"
        pwfile.write_text(self.s.password())
        self.s.log_dir.mkdir(parents=True, exist_ok=True)
        for d in (self.s.home_dir, *self.s.home_dir.parents):
            if d == Path("/"):
                break
            if os.geteuid() == 0:  # the cluster owner must traverse down to its data directory
                os.chmod(d, os.stat(d).st_mode | 0o005)
        _chown_to_owner(base)
        try:
            result = subprocess.run(
                _as_cluster_owner([
                    _bin("initdb"), "-D", str(self.data), "-U", self.s.pg_superuser,
                    f"--pwfile={pwfile}", "--auth-local=trust", "--auth-host=scram-sha-256",
                    "-E", "UTF8", "--no-locale",
                ]),
                capture_output=True, text=True,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise StackError(f"PostgreSQL: initdb failed:\n{result.stdout}\n{result.stderr}")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# q2c embedded stack\n"
                f"listen_addresses = '{self.s.host}'\n"
                f"port = {self.s.pg_port}\n"
                f"unix_socket_directories = '{self.sock}'\n"
                "wal_level = logical\n"
                "max_wal_senders = 16\n"
                "max_replication_slots = 16\n"
                "max_connections = 200\n"
                "shared_buffers = 256MB\n"
                "log_min_messages = warning\n"
                "timezone = 'UTC'\n"
            )

    def start(self) -> None:
        if self.running():
            return
        require_free_port("PostgreSQL", self.s.host, self.s.pg_port)
        self.s.log_dir.mkdir(parents=True, exist_ok=True)
        self.log.touch()
        _chown_to_owner(self.log)
        result = self._ctl("-l", str(self.log), "-w", "-t", "60", "-o", f"-p {self.s.pg_port}", "start", check=False)
        if result.returncode != 0:
            raise StackError(f"PostgreSQL did not start: {result.stderr or result.stdout}\nsee {self.log}")
        wait_until("PostgreSQL", self.healthy, 30, self.log)

    def stop(self) -> bool:
        if not self.running():
            return False
        self._ctl("-m", "fast", "-w", "stop", check=False)
        return True

    def running(self) -> bool:
        if not (self.data / "PG_VERSION").exists():
            return False
        return self._ctl("status", check=False).returncode == 0

    def healthy(self) -> bool:
        try:
            with psycopg.connect(self.s.dsn("postgres"), connect_timeout=2) as conn:
                conn.execute("select 1")
            return True
        except psycopg.Error:
            return False

    def inactive_slots(self) -> list[str]:
        """Replication slots of the connectors that no one is streaming from (capture is down)."""
        wanted = {f"q2c_{db}" for db in sources.captured_tables()}
        with psycopg.connect(self.s.dsn("postgres"), connect_timeout=3) as conn:
            active = {r[0] for r in conn.execute("select slot_name from pg_replication_slots where active")}
        return sorted(wanted - active)

    def create_databases(self) -> None:
        """Create the five databases and load the client firm's DDL, once."""
        with psycopg.connect(self.s.dsn("postgres"), autocommit=True) as conn:
            existing = {r[0] for r in conn.execute("select datname from pg_database")}
            for db in ALL_DATABASES:
                if db not in existing:
                    conn.execute(f'create database "{db}"')
        for db in ("crm", "psa", "finance", "erp"):
            with psycopg.connect(self.s.dsn(db), autocommit=True) as conn:
                loaded = conn.execute(
                    "select count(*) from information_schema.schemata where schema_name = %s",
                    ("erp_inbound" if db == "erp" else db,),
                ).fetchone()[0]
                if not loaded:
                    conn.execute((SYSTEMS_DIR / f"{db}.sql").read_text())
        self.create_roles()
        with psycopg.connect(self.s.dsn("warehouse", "sync"), autocommit=True) as conn:
            warehouse.ensure_schema(conn)

    def create_roles(self) -> None:
        """Least privilege. ``q2c_capture`` replicates and reads only the captured tables (the
        publications are made here, by the owner, so Debezium needs no more); ``q2c_sync`` writes
        only what the sync owns: erp_inbound, PSA project provisioning, crm.account_financials and
        the warehouse's ``dw`` schema; ``q2c_reader`` reads ``dw`` and nothing else."""
        self.s.secrets_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for role in ("capture", "sync", "reader"):
            secret = self.s.secrets_dir / f"{role}_password"
            if not secret.exists():
                secret.write_text(secrets.token_urlsafe(24))
                secret.chmod(0o600)
        sources.apply(self.s, sources.plan(self.s))  # what a firm's DBA runs: `q2c sources prepare`
        for db in ALL_DATABASES:  # and, on the stack's own cluster, no one else may connect
            with psycopg.connect(self.s.dsn(db), autocommit=True) as conn:
                conn.execute(f'REVOKE ALL ON DATABASE "{db}" FROM PUBLIC')

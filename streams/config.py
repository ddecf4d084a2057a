"""Settings of the sync and of its embedded stack, from the environment (prefix ``Q2C_``).

Every port is configurable; secrets are read from the environment or from files under
``$Q2C_HOME/secrets`` that the stack generates, never from committed config.
"""
from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # the checkout (installed: site-packages)


def _default_home() -> Path:
    """``.q2c`` at the top of a checkout; installed, in the folder it is run from."""
    return PROJECT_ROOT / ".q2c" if (PROJECT_ROOT / "pyproject.toml").exists() else Path.cwd() / ".q2c"
SOURCE_DATABASES = ("crm", "psa", "finance")
ALL_DATABASES = (*SOURCE_DATABASES, "erp", "warehouse")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="Q2C_", extra="ignore")

    # --- where the embedded stack lives and listens -------------------------------------------
    home: Path = Field(default_factory=_default_home, description=(
        "Where the embedded stack keeps its data, logs, PID files and generated secrets; the worker its"
        " RocksDB tables. Default: `.q2c` at the top of a checkout, else in the folder it is run from."))
    host: str = Field("127.0.0.1", description="The address the embedded stack's parts listen on and are reached at.")
    pg_port: int = Field(25432, description="The embedded PostgreSQL's port.")
    kafka_port: int = Field(29092, description="The embedded Kafka broker's port.")
    controller_port: int = Field(29093, description="The embedded Kafka's KRaft controller port.")
    connect_port: int = Field(28083, description="The embedded Kafka Connect's REST port.")
    kafka_jmx_port: int = Field(29094, description="The embedded Kafka's Prometheus JMX exporter agent (deploy/jmx/).")
    connect_jmx_port: int = Field(28084, description="The embedded Connect's (and Debezium's) Prometheus JMX exporter agent.")
    metrics_port: int = Field(28000, description="The worker's HTTP server: `/metrics`, `/health`, `/status`.")
    bind: str = Field("127.0.0.1", description=(
        "The address the worker's HTTP server listens on: loopback unless set (a container sets 0.0.0.0 for a"
        " Prometheus beside it). It serves no table contents: Faust's web server is not started."))
    worker_web_port: int = Field(26066, description=(
        "Names a worker among several on one host: its Faust data directory and its static group membership."))
    prometheus_port: int = Field(29090, description="The embedded Prometheus's port.")
    # C1 only: on a small machine the C2 compiler took a quarter of Connect's CPU in a fresh stack's
    # first minutes (JFR); with C1 only Debezium captured a 100,700-row backlog at 6,459 rows/s
    # against 4,326, with 189 against 288 µs of Connect CPU a row and 50 against 139 of Kafka's.
    jvm_flags: str = Field("-XX:TieredStopAtLevel=1", description=(
        "Extra flags of the embedded stack's JVMs (Kafka, Connect); empty for the JVM's defaults."))
    # --- PostgreSQL: the firm's databases and the sync's roles ----------------------------------
    pg_superuser: str = Field("q2c", description="The embedded cluster's owner (the firm's users in tests and the demo).")
    pg_password: SecretStr | None = Field(None, description=(
        "The cluster owner's password; unset, the one generated under `$Q2C_HOME/secrets`."))
    capture_password: SecretStr | None = Field(None, description=(
        "The password `q2c sources prepare` gives the capture role `q2c_capture` (Debezium); unset, the"
        " embedded stack's generated one."))
    sync_password: SecretStr | None = Field(None, description=(
        "The password `q2c sources prepare` gives the sync's role `q2c_sync` (the worker); unset, the"
        " embedded stack's generated one."))
    reader_password: SecretStr | None = Field(None, description=(
        "The password `q2c sources prepare` gives the warehouse's read-only role `q2c_reader` (a BI"
        " tool: SELECT on `dw` only); unset, the embedded stack's generated one."))
    crm_dsn: str | None = Field(None, description=(
        "The CRM database where it is not the embedded stack's (docker-compose, production): `postgresql://…`."
        " The worker's connects as `q2c_sync`; `q2c sources prepare`'s as the database's owner."))
    psa_dsn: str | None = Field(None, description="The PSA database, likewise.")
    finance_dsn: str | None = Field(None, description="The legacy finance database, likewise.")
    erp_dsn: str | None = Field(None, description="The ERP's inbound interface database, likewise.")
    warehouse_dsn: str | None = Field(None, description="The warehouse database (schemas `dw` and `audit`), likewise.")
    # --- Kafka, Connect and the schema registry -------------------------------------------------
    kafka_bootstrap: str | None = Field(None, description="Kafka's bootstrap servers where it is not the embedded broker.")
    connect_rest_url: str | None = Field(None, description=(
        "Kafka Connect's REST API where it is not the embedded one (connector states on `/metrics` and"
        " `/status`, `q2c connectors`)."))
    kafka_security_protocol: str = Field("PLAINTEXT", description=(
        "Every Kafka client's security protocol: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."))
    kafka_sasl_mechanism: str | None = Field(None, description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.")
    kafka_sasl_username: str | None = Field(None, description="SASL user name.")
    kafka_sasl_password: SecretStr | None = Field(None, description="SASL password.")
    kafka_ssl_cafile: str | None = Field(None, description="The CA file that signs the brokers' certificates.")
    schema_registry_url: str | None = Field(None, description=(
        "A Confluent-compatible schema registry (Confluent, Apicurio's `/apis/ccompat/v7`, Karapace): set,"
        " canonical events are written in Confluent's wire format; unset, in Avro single-object encoding"
        " with `schemas/` as the registry. Either is read whatever is set."))
    schema_registry_basic_auth: SecretStr | None = Field(None, description="The registry's basic auth, `user:password`.")
    schema_registry_ca_file: str | None = Field(None, description="The CA file that signs the registry's certificate.")
    schema_registry_auto_register: bool = Field(True, description=(
        "Register a canonical schema on first use; false where the registry is managed (`q2c schemas register`)."))
    topic_partitions: int = Field(1, description="Partitions of the topics the worker creates (source, canonical, dead letters).")
    # --- the worker -----------------------------------------------------------------------------
    table_store: str = Field("rocksdb", description=(
        "Where the worker's tables live: `rocksdb` (local disk, kept across restarts: a restarted worker"
        " reads only its changelogs' tail) or `memory` (rebuilt from the changelogs on every start)."))
    state_cache_rows: int = Field(20_000, description=(
        "On RocksDB the mirror and the ledger read rows on demand: how many decoded rows each keeps in memory."))
    engagement_partitions: int = Field(0, description=(
        "Scaling out (docs/design.md, Scaling): 0 derives every engagement on the worker that reads the"
        " source topics; N > 0 routes each engagement to one of N partitions of q2c.changes.by-engagement,"
        " shared by every worker of the same app id. Fixed once engagements are routed."))
    app_id: str = Field("q2c-sync", description="The Faust app: its consumer group and its tables' changelog topics.")
    # 2,000-row source transactions caught up at 3,657 / 3,708 changes/s with 2,000, 3,948 / 4,110 with 5,000
    batch_size: int = Field(5000, description=(
        "Change events a batch takes at most (and the warehouse loader's): a source transaction that"
        " spans two batches is held and persisted meanwhile. Live, a batch is what `batch_within_s` gathers."))
    transaction_wait_s: float = Field(120.0, description=(
        "How long a source transaction is held waiting for all its changes before it is applied as it is."))
    batch_within_s: float = Field(0.05, description=(
        "How long a batch waits to fill before it is processed: a change's latency when it comes alone."))
    session_timeout_s: float = Field(20.0, description=(
        "How long the group waits for a worker that stopped answering before its partitions go to another."))

    @cached_property
    def home_dir(self) -> Path:
        return self.home.resolve()

    @property
    def secrets_dir(self) -> Path:
        return self.home_dir / "secrets"

    @property
    def run_dir(self) -> Path:
        return self.home_dir / "run"

    @property
    def replay_target(self) -> Path:
        """Where ``q2c replay`` leaves the worker the offsets to re-read up to (the worker deletes
        it once done)."""
        return self.run_dir / "replay-target.json"

    @property
    def log_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def jvm_dir(self) -> Path:
        return self.home_dir / "jvm"

    def password(self, role: str = "admin") -> str:
        """A role's password: from the environment (admin: Q2C_PG_PASSWORD) or the stack's secret file."""
        if role == "admin" and self.pg_password:
            return self.pg_password.get_secret_value()
        given = {"capture": self.capture_password, "sync": self.sync_password, "reader": self.reader_password}.get(role)
        if given:
            return given.get_secret_value()
        secret = self.secrets_dir / ("pg_password" if role == "admin" else f"{role}_password")
        return secret.read_text().strip() if secret.exists() else ""

    def dsn(self, database: str, role: str = "admin") -> str:
        """Where ``role`` connects to ``database``. Roles of the embedded stack: ``admin`` (the
        cluster owner; the firm's users in tests), ``capture`` (Debezium and reconcile: read the
        captured tables, replicate), ``sync`` (the worker: writes only what the sync owns),
        ``reader`` (a BI tool: reads the warehouse's ``dw`` schema)."""
        override = getattr(self, f"{database}_dsn", None)
        if override:
            return override
        user = {"admin": self.pg_superuser, "capture": "q2c_capture", "sync": "q2c_sync", "reader": "q2c_reader"}[role]
        return f"postgresql://{user}:{self.password(role)}@{self.host}:{self.pg_port}/{database}"

    @property
    def bootstrap(self) -> str:
        return self.kafka_bootstrap or f"{self.host}:{self.kafka_port}"

    @property
    def connect_url(self) -> str:
        return self.connect_rest_url or f"http://{self.host}:{self.connect_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://{self.host}:{self.metrics_port}/metrics"

    @property
    def prometheus_url(self) -> str:
        return f"http://{self.host}:{self.prometheus_port}"

    def kafka_client_config(self) -> dict[str, str]:
        """librdkafka settings for confluent-kafka clients."""
        conf = {"bootstrap.servers": self.bootstrap, "security.protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
        if self.kafka_sasl_username:
            conf["sasl.username"] = self.kafka_sasl_username
        if self.kafka_sasl_password:
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_ssl_cafile:
            conf["ssl.ca.location"] = self.kafka_ssl_cafile
        return conf


def faust_credentials(settings: Settings):
    """The same Kafka security settings for Faust (aiokafka) as ``kafka_client_config`` gives
    confluent-kafka: SASL (PLAIN / SCRAM) over PLAINTEXT or SSL, or SSL alone."""
    import ssl

    import faust

    protocol = settings.kafka_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=settings.kafka_ssl_cafile)
    if protocol.startswith("SASL"):
        password = settings.kafka_sasl_password.get_secret_value() if settings.kafka_sasl_password else None
        return faust.SASLCredentials(username=settings.kafka_sasl_username, password=password,
                                     mechanism=(settings.kafka_sasl_mechanism or "PLAIN").upper(), ssl_context=context)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    raise ValueError(f"unsupported Q2C_KAFKA_SECURITY_PROTOCOL {settings.kafka_security_protocol!r}")


def load() -> Settings:
    return Settings()


SECTIONS = {  # the headings of docs/configuration.md, and the settings under each
    "Where the embedded stack lives and listens": (
        "home", "host", "pg_port", "kafka_port", "controller_port", "connect_port", "kafka_jmx_port", "connect_jmx_port",
        "metrics_port", "bind", "worker_web_port", "prometheus_port", "jvm_flags"),
    "PostgreSQL: the firm's databases and the sync's roles": (
        "pg_superuser", "pg_password", "capture_password", "sync_password", "reader_password",
        "crm_dsn", "psa_dsn", "finance_dsn", "erp_dsn",
        "warehouse_dsn"),
    "Kafka, Connect and the schema registry": (
        "kafka_bootstrap", "connect_rest_url", "kafka_security_protocol", "kafka_sasl_mechanism", "kafka_sasl_username",
        "kafka_sasl_password", "kafka_ssl_cafile", "schema_registry_url", "schema_registry_basic_auth",
        "schema_registry_ca_file", "schema_registry_auto_register", "topic_partitions"),
    "The worker": (
        "table_store", "state_cache_rows", "engagement_partitions", "app_id", "batch_size", "transaction_wait_s",
        "batch_within_s", "session_timeout_s"),
}


def reference() -> str:
    """docs/configuration.md: every setting, its type, default and meaning (``q2c settings --markdown``)."""
    def kind(annotation) -> str:
        text = str(annotation).replace("pydantic.types.", "")
        return {"SecretStr | None": "secret", "str | None": "str"}.get(text) or getattr(annotation, "__name__", text).lower()

    out = ["# Configuration", "",
           "Every setting comes from the environment, prefix `Q2C_`: `home` is `Q2C_HOME`. Unset, a setting has",
           "its default; a secret is never printed (`q2c settings` shows what is in effect, secrets masked).",
           "This file is generated from `streams/config.py` (`q2c settings --markdown > docs/configuration.md`);",
           "a test fails when it is out of date.", ""]
    for heading, names in SECTIONS.items():
        out += [f"## {heading}", "", "| variable | type | default | meaning |", "|---|---|---|---|"]
        for name in names:
            field = Settings.model_fields[name]
            default = "(generated)" if field.default_factory else ("(unset)" if field.default is None else f"`{field.default}`")
            out.append(f"| `Q2C_{name.upper()}` | {kind(field.annotation)} | {default} | {field.description} |")
        out.append("")
    out += ["## Read by the command and the tests, not settings", "",
            "| variable | meaning |", "|---|---|",
            "| `Q2C_DEBUG` | set: a command that fails prints its traceback as well as its one line |",
            "| `Q2C_TEST_PORT_OFFSET` | moves the test stack's ports, to run the suite beside another stack |",
            "| `Q2C_TEST_HOME` | where the test stack lives (default: a new temporary folder) |",
            "| `Q2C_FAULT_ENGAGEMENTS`, `Q2C_FAULT_ENTRIES`, `Q2C_FAULT_ERP_DOWN_S` | the fault tests' load (`make chaos` raises them) |",
            "| `Q2C_STACK_*` | printed by `q2c env` for a person's shell; no setting reads them |", ""]
    return "\n".join(out)

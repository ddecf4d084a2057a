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

    home: Path = Field(default_factory=_default_home, description="where the embedded stack keeps its data")
    host: str = "127.0.0.1"
    pg_port: int = 25432
    kafka_port: int = 29092
    controller_port: int = 29093
    connect_port: int = 28083
    # the Prometheus JMX exporter agents of the embedded Kafka and Connect (deploy/jmx/)
    kafka_jmx_port: int = 29094
    connect_jmx_port: int = 28084
    metrics_port: int = 28000
    # The address the worker's own HTTP server (/metrics, /health, /status) listens on: loopback
    # unless set (a container sets 0.0.0.0 for a Prometheus beside it). It serves no table
    # contents: Faust's web server, whose /table/ views answer with source rows, is not started.
    bind: str = "127.0.0.1"
    # Names a worker among several on one host (its Faust datadir, its static group membership).
    worker_web_port: int = 26066
    prometheus_port: int = 29090
    # Extra flags of the embedded stack's JVMs (Kafka, Connect). C1 only: on a small machine the
    # C2 compiler took a quarter of Connect's CPU in a fresh stack's first minutes (JFR), and with
    # C1 only Debezium captured a 100,700-row backlog at 6,459 rows/s against 4,326, with 189
    # against 288 µs of Connect CPU a row and 50 against 139 of Kafka's. "" for the JVM's defaults.
    jvm_flags: str = "-XX:TieredStopAtLevel=1"
    pg_superuser: str = "q2c"
    pg_password: SecretStr | None = None
    # the passwords `q2c sources prepare` gives the capture and the sync roles (unset: the
    # embedded stack's generated ones, under $Q2C_HOME/secrets)
    capture_password: SecretStr | None = None
    sync_password: SecretStr | None = None
    # Per-database DSNs for deployments where the databases live apart (docker-compose, production);
    # unset, every database is on the embedded stack's PostgreSQL.
    crm_dsn: str | None = None
    psa_dsn: str | None = None
    finance_dsn: str | None = None
    erp_dsn: str | None = None
    warehouse_dsn: str | None = None
    kafka_bootstrap: str | None = None
    connect_rest_url: str | None = None  # Kafka Connect's REST API where it is not the embedded stack's
    # Kafka client security, passed through to every client the sync makes (see docs/security.md).
    kafka_security_protocol: str = "PLAINTEXT"
    kafka_sasl_mechanism: str | None = None
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    kafka_ssl_cafile: str | None = None
    # A Confluent-compatible schema registry (Confluent, Apicurio's /apis/ccompat/v7, Karapace):
    # set, canonical events are written in Confluent's wire format; unset, in Avro single-object
    # encoding with schemas/ as the registry. Either is read whatever is set.
    schema_registry_url: str | None = None
    schema_registry_basic_auth: SecretStr | None = None  # "user:password"
    schema_registry_ca_file: str | None = None
    schema_registry_auto_register: bool = True
    topic_partitions: int = 1
    # Where the worker's tables live: on local disk (RocksDB, kept across restarts: a restarted
    # worker reads only its changelogs' tail), or "memory" (rebuilt from the changelogs on start).
    table_store: str = "rocksdb"
    # On RocksDB the mirror and the ledger read rows on demand: how many decoded rows each keeps
    # in memory (the most recently used).
    state_cache_rows: int = 20_000
    # Scaling out (docs/design.md, "Scaling"): 0 derives every engagement on the worker reading the
    # source topics; N > 0 routes each engagement to one of N partitions of the topic
    # q2c.changes.by-engagement, which every worker started with the same app_id shares.
    engagement_partitions: int = 0
    app_id: str = "q2c-sync"  # the Faust app: consumer group and table changelog names
    # events a batch takes at most (and the warehouse loader's): a source transaction that spans
    # two batches is held, persisted and forgotten again, so bulk loads of large transactions
    # gain from room for them (2,000-row transactions: 3,657 / 3,708 changes/s at 2,000, 3,948 /
    # 4,110 at 5,000); live, a batch is what ``batch_within_s`` gathers
    batch_size: int = 5000
    # how long a source transaction is held waiting for all its changes before it is applied as it is
    transaction_wait_s: float = 120.0
    # how long a batch waits to fill before it is processed as it is: a change's latency when it comes alone
    batch_within_s: float = 0.05
    # how long the group waits for a worker that stopped answering before its partitions go to another
    session_timeout_s: float = 20.0

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
    def log_dir(self) -> Path:
        return self.home_dir / "logs"

    @property
    def jvm_dir(self) -> Path:
        return self.home_dir / "jvm"

    def password(self, role: str = "admin") -> str:
        """A role's password: from the environment (admin: Q2C_PG_PASSWORD) or the stack's secret file."""
        if role == "admin" and self.pg_password:
            return self.pg_password.get_secret_value()
        given = {"capture": self.capture_password, "sync": self.sync_password}.get(role)
        if given:
            return given.get_secret_value()
        secret = self.secrets_dir / ("pg_password" if role == "admin" else f"{role}_password")
        return secret.read_text().strip() if secret.exists() else ""

    def dsn(self, database: str, role: str = "admin") -> str:
        """Where ``role`` connects to ``database``. Roles of the embedded stack: ``admin`` (the
        cluster owner; the firm's users in tests), ``capture`` (Debezium and reconcile: read the
        captured tables, replicate), ``sync`` (the worker: writes only what the sync owns)."""
        override = getattr(self, f"{database}_dsn", None)
        if override:
            return override
        user = {"admin": self.pg_superuser, "capture": "q2c_capture", "sync": "q2c_sync"}[role]
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

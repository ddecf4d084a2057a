"""The JVM parts of the stack: jars from Maven Central (pinned in pom.xml), a KRaft broker and a
distributed Kafka Connect worker with the Debezium PostgreSQL connector on its class path."""
from __future__ import annotations

import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
from confluent_kafka.admin import AdminClient

from streams import connectors, resources
from streams.config import Settings
from streams.stack.process import BackgroundPart, StackError, pid_of, port_is_free

POM = Path(__file__).parent / "pom.xml"
# The Prometheus JMX exporter, as a java agent beside Kafka and Connect (not on their class path:
# the agent jar carries its own copies of libraries). Its rules: deploy/jmx/<part>.yml.
JMX_EXPORTER = "io.prometheus.jmx:jmx_prometheus_javaagent:1.0.1"
JMX_RULES = resources.path("deploy", "jmx")

LOG4J2 = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %c{1} - %m%n
rootLogger.level = WARN
rootLogger.appenderRef.out.ref = out
logger.connect.name = org.apache.kafka.connect.runtime.Worker
logger.connect.level = INFO
logger.dbz.name = io.debezium
logger.dbz.level = INFO
"""


def fetch_jars(settings: Settings) -> Path:
    """Copy the pinned jars under ``$Q2C_HOME/jvm`` (Maven caches the downloads in ~/.m2)."""
    marker = settings.jvm_dir / ".complete"
    wanted = POM.read_text() + JMX_EXPORTER
    if marker.exists() and marker.read_text() == wanted:
        return settings.jvm_dir
    if not shutil.which("mvn"):
        raise StackError("Maven (mvn) is not installed; `make run` installs it with apt")
    for command in (["dependency:copy-dependencies", f"-Djvm.dir={settings.jvm_dir}"],
                    ["dependency:copy", f"-Dartifact={JMX_EXPORTER}", f"-Djvm.dir={agent_dir(settings)}"]):
        result = subprocess.run(["mvn", "-q", "-B", "-f", str(POM), *command], capture_output=True, text=True)
        if result.returncode != 0:
            raise StackError(f"fetching the Kafka/Connect/Debezium jars from Maven Central failed:\n{result.stdout[-3000:]}")
    marker.write_text(wanted)
    return settings.jvm_dir


def agent_dir(settings: Settings) -> Path:
    return settings.jvm_dir / "agents"


def jmx_agent(settings: Settings, part: str, port: int) -> str:
    """The JVM flag that starts the JMX exporter serving ``part``'s metrics on ``host:port``."""
    jar = next(agent_dir(settings).glob("jmx_prometheus_javaagent-*.jar"))
    return f"-javaagent:{jar}={settings.host}:{port}:{JMX_RULES / f'{part}.yml'}"


def _java(settings: Settings, heap: str, main: str, *args: str, agent: str | None = None) -> list[str]:
    log4j = settings.run_dir / "log4j2.properties"
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    log4j.write_text(LOG4J2)
    return [
        shutil.which("java") or "java", f"-Xmx{heap}", "-Xms128m", "-XX:+UseG1GC", *settings.jvm_flags.split(),
        "-Djava.awt.headless=true", f"-Dlog4j2.configurationFile={log4j}", *([agent] if agent else []),
        "-cp", f"{settings.jvm_dir}/*", main, *args,
    ]


class KafkaBroker(BackgroundPart):
    name = "kafka"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.dir = settings.home_dir / "kafka"
        self.props = self.dir / "server.properties"

    def configure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        s = self.s
        self.props.write_text(
            "process.roles=broker,controller\n"
            "node.id=1\n"
            f"controller.quorum.voters=1@{s.host}:{s.controller_port}\n"
            f"listeners=PLAINTEXT://{s.host}:{s.kafka_port},CONTROLLER://{s.host}:{s.controller_port}\n"
            f"advertised.listeners=PLAINTEXT://{s.host}:{s.kafka_port}\n"
            "controller.listener.names=CONTROLLER\n"
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT\n"
            f"log.dirs={self.dir / 'data'}\n"
            f"num.partitions={s.topic_partitions}\n"
            "offsets.topic.replication.factor=1\n"
            "transaction.state.log.replication.factor=1\n"
            "transaction.state.log.min.isr=1\n"
            "share.coordinator.state.topic.replication.factor=1\n"
            "share.coordinator.state.topic.min.isr=1\n"
            "group.initial.rebalance.delay.ms=0\n"
            "auto.create.topics.enable=true\n"
            "log.retention.hours=-1\n"
            "log.segment.bytes=67108864\n"
        )
        if not (self.dir / "data" / "meta.properties").exists():
            cluster_id = _kafka_uuid()  # may start with "-": passed as --cluster-id=<id>
            result = subprocess.run(
                _java(s, "256m", "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "--config", str(self.props)),
                capture_output=True, text=True,
            )
            if result.returncode != 0:
                raise StackError(f"Kafka: formatting the KRaft storage failed:\n{result.stdout}{result.stderr}")

    def start(self) -> None:
        if pid_of(self.pidfile):
            return
        self.configure()
        self.launch(_java(self.s, "768m", "kafka.Kafka", str(self.props), agent=jmx_agent(self.s, "kafka", self.s.kafka_jmx_port)),
                    {"Kafka": self.s.kafka_port, "Kafka controller": self.s.controller_port,
                     "Kafka's JMX exporter": self.s.kafka_jmx_port}, 90)

    def healthy(self) -> bool:
        if not pid_of(self.pidfile):
            return False
        if port_is_free(self.s.host, self.s.kafka_port):
            return False
        admin = AdminClient({**self.s.kafka_client_config(), "socket.timeout.ms": 3000, "log_level": 0})
        metadata = admin.list_topics(timeout=3)
        return bool(metadata.brokers)


def _kafka_uuid() -> str:
    import base64

    return base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")


class ConnectWorker(BackgroundPart):
    name = "connect"

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.dir = settings.home_dir / "connect"
        self.props = self.dir / "connect-distributed.properties"

    def configure(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        s = self.s
        self.props.write_text(
            f"bootstrap.servers={s.bootstrap}\n"
            "group.id=q2c-connect\n"
            "config.storage.topic=q2c-connect-configs\n"
            "offset.storage.topic=q2c-connect-offsets\n"
            "status.storage.topic=q2c-connect-status\n"
            "config.storage.replication.factor=1\n"
            "offset.storage.replication.factor=1\n"
            "status.storage.replication.factor=1\n"
            "offset.flush.interval.ms=1000\n"
            "key.converter=org.apache.kafka.connect.json.JsonConverter\n"
            "key.converter.schemas.enable=false\n"
            "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
            "value.converter.schemas.enable=false\n"  # the connectors say so too (connect/*.json)
            f"listeners=http://{s.host}:{s.connect_port}\n"
            f"rest.advertised.host.name={s.host}\n"
            f"rest.advertised.port={s.connect_port}\n"
            "plugin.discovery=service_load\n"
            # Secrets reach connector configs from the environment, never from the JSON in connect/.
            "config.providers=env\n"
            "config.providers.env.class=org.apache.kafka.common.config.provider.EnvVarConfigProvider\n"
        )

    def env(self) -> dict[str, str]:
        return {
            "Q2C_PG_HOST": self.s.host,
            "Q2C_PG_PORT": str(self.s.pg_port),
            "Q2C_CAPTURE_USER": "q2c_capture",
            "Q2C_CAPTURE_PASSWORD": self.s.password("capture"),
        }

    def start(self) -> None:
        if pid_of(self.pidfile):
            return
        self.configure()
        self.launch(_java(self.s, "1g", "org.apache.kafka.connect.cli.ConnectDistributed", str(self.props),
                          agent=jmx_agent(self.s, "connect", self.s.connect_jmx_port)),
                    {"Kafka Connect": self.s.connect_port, "Connect's JMX exporter": self.s.connect_jmx_port}, 120,
                    env=self.env(), ready=self.rest_up)

    def rest_up(self) -> bool:
        return httpx.get(f"{self.s.connect_url}/connectors", timeout=3).status_code == 200

    def register(self, config_files: list[Path]) -> None:
        """Create or update each connector (``streams.connectors``) and wait until its tasks run."""
        try:
            applied = connectors.apply(self.s.connect_url, config_files)
            connectors.wait_running(self.s.connect_url, [a.name for a in applied])
        except connectors.ConnectorError as exc:
            raise StackError(str(exc)) from exc

    def connector_running(self, name: str) -> bool:
        return self._running(state for state in connectors.states(self.s.connect_url) if state.name == name)

    def healthy(self) -> bool:
        if not pid_of(self.pidfile):
            return False
        return self._running(connectors.states(self.s.connect_url))

    @staticmethod
    def _running(states) -> bool:
        """Whether there are connectors and every one runs with all its tasks; a failed task is an error."""
        states = list(states)
        for state in states:
            failed = [task for task in state.tasks if task[1] == "FAILED"]
            if failed:
                raise StackError(f"connector {state.name} failed: {failed[0][2]}")
        return bool(states) and all(state.running for state in states)

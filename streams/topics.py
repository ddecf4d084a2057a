"""Topic names, and their creation before the worker subscribes."""
from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.canonical.avro import EVENT_TYPES, topic_of
from streams.capture.tables import all_mappings
from streams.config import SOURCE_DATABASES, Settings

DEAD_LETTER = "q2c.dead-letter"
DEAD_LETTER_REPLAYS = "q2c.dead-letter.replays"
AUDIT = "q2c.audit"  # a record of every sink write (streams.state.audit), loaded into the warehouse's audit schema
REPLAY_HEADER = "q2c.replay_of"  # on a dead letter produced again to its source topic
COMMITTED_HEADER = "q2c.committed"  # on a canonical event: its source commit, epoch seconds
NOTIFICATIONS = "q2c.capture.notifications"  # Debezium's notifications (snapshots' progress), JSON
BY_ENGAGEMENT = "q2c.changes.by-engagement"  # scaled out: bundle parts keyed by contract number
MIRROR, LEDGER, OPEN_TRANSACTIONS, ROUTES = "q2c-mirror", "q2c-ledger", "q2c-open-transactions", "q2c-routes"
ENGAGEMENT_ROWS, ENGAGEMENT_LEDGER = "q2c-engagement-rows", "q2c-engagement-ledger"


def changelog(settings: Settings, table: str) -> str:
    return f"{settings.app_id}-{table}-changelog"


def source_topics() -> list[str]:
    """Debezium topics: ``<topic.prefix>.<schema>.<table>`` for the captured tables and
    ``<topic.prefix>.transaction`` for the transaction markers, the prefix being the database."""
    tables = [f"{table_id.split('.')[0]}.{table_id}" for table_id in all_mappings()]
    return sorted([*tables, *(f"{db}.transaction" for db in SOURCE_DATABASES)])


def canonical_topics() -> list[str]:
    return [topic_of(t) for t in EVENT_TYPES]


def ensure_topics(settings: Settings) -> None:
    wanted = [NewTopic(t, num_partitions=settings.topic_partitions, replication_factor=1, config={"retention.ms": "-1"})
              for t in [*source_topics(), *canonical_topics(), DEAD_LETTER, DEAD_LETTER_REPLAYS, AUDIT]]
    if settings.engagement_partitions:
        wanted.append(NewTopic(BY_ENGAGEMENT, num_partitions=settings.engagement_partitions, replication_factor=1,
                               config={"retention.ms": "-1", "compression.type": "producer"}))
    create_missing(settings, wanted)


def create_missing(settings: Settings, wanted: list[NewTopic]) -> None:
    """Create those of ``wanted`` that do not exist; one made meanwhile (by a connector, another
    worker) is as good."""
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    existing = set(admin.list_topics(timeout=10).topics)
    new = [topic for topic in wanted if topic.topic not in existing]
    if not new:
        return
    for future in admin.create_topics(new).values():
        try:
            future.result()
        except KafkaException as exc:
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise

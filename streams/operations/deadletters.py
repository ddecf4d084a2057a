"""``q2c dlq``: inspect dead letters and re-drive them once their cause is fixed.

A dead letter keeps the original key and value and says in its headers why it failed and where it
came from. Replaying one produces the original record again to its source topic, so it goes
through the same (idempotent) path as any change; a marker on ``q2c.dead-letter.replays`` records
that it was replayed."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from confluent_kafka import Producer

from streams.config import Settings
from streams.kafka_io import read_all
from streams.topics import DEAD_LETTER, REPLAY_HEADER
from streams.topics import DEAD_LETTER_REPLAYS as REPLAYS


@dataclass
class DeadLetter:
    id: str                 # <partition>:<offset> on the dead-letter topic
    reason: str
    error: str
    failed_at: str
    source_topic: str
    source_partition: str
    source_offset: str
    source_lsn: str
    key: str | None
    value: str | None
    replayed_at: str | None = None

    def summary(self) -> dict:
        d = asdict(self)
        d.pop("value")
        return d


def _text(raw: bytes | None) -> str | None:
    return raw.decode("utf-8", "replace") if raw is not None else None


def entries(settings: Settings) -> list[DeadLetter]:
    replayed = {(_text(m.key()) or ""): _text(m.value()) for m in read_all(settings, REPLAYS)}
    found = []
    for msg in read_all(settings, DEAD_LETTER):
        headers = {k: _text(v) or "" for k, v in (msg.headers() or [])}
        letter_id = f"{msg.partition()}:{msg.offset()}"
        found.append(DeadLetter(
            id=letter_id, reason=headers.get("q2c.reason", ""), error=headers.get("q2c.error", ""),
            failed_at=headers.get("q2c.failed_at", ""), source_topic=headers.get("q2c.source.topic", ""),
            source_partition=headers.get("q2c.source.partition", ""), source_offset=headers.get("q2c.source.offset", ""),
            source_lsn=headers.get("q2c.source.lsn", ""), key=_text(msg.key()), value=_text(msg.value()),
            replayed_at=replayed.get(letter_id),
        ))
    return found


def find(settings: Settings, letter_id: str) -> DeadLetter | None:
    return next((d for d in entries(settings) if d.id == letter_id), None)


def replay(settings: Settings, letters: list[DeadLetter]) -> list[str]:
    """Produce each letter's original record to its source topic; returns the ids replayed."""
    producer = Producer({**settings.kafka_client_config(), "enable.idempotence": True, "log_level": 3})
    now = datetime.now(UTC).isoformat()
    done = []
    for letter in letters:
        if not letter.source_topic:
            continue
        # back to the partition it came from: it keeps its place among its key's records (the
        # engagement topic is partitioned by the sync, not by the key's hash)
        where = {"partition": int(letter.source_partition)} if letter.source_partition.isdigit() else {}
        producer.produce(letter.source_topic, key=letter.key.encode() if letter.key is not None else None,
                         value=letter.value.encode() if letter.value is not None else None,
                         headers=[(REPLAY_HEADER, letter.id.encode())], **where)
        producer.produce(REPLAYS, key=letter.id.encode(), value=now.encode())
        done.append(letter.id)
    if producer.flush(30):
        raise RuntimeError("not every replayed dead letter reached Kafka")
    return done


def as_json(letters: list[DeadLetter], full: bool = False) -> str:
    return json.dumps([asdict(d) if full else d.summary() for d in letters], indent=None)

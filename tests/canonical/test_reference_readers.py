"""Canonical events as downstream consumers read them: Avro single-object encoding as the Avro
specification defines it (``C3 01``, the schema's CRC-64-AVRO fingerprint little-endian, the
body), read by the reference Java implementation (``BinaryMessageDecoder`` over a ``SchemaStore``
of ``schemas/``, org.apache.avro:avro 1.12 from Maven Central) and by a second Python
implementation (Apache's ``avro`` package); messages written before the header was right stay
readable by the sync's own readers."""
import io
import shutil
import struct
import subprocess
from functools import lru_cache
from pathlib import Path

import avro.io as apache_io
import avro.schema as apache_schema
import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.canonical import avro
from streams.config import PROJECT_ROOT
from streams.testing.firm import eventually

JAVA = Path(__file__).parent / "java"
SCHEMAS = PROJECT_ROOT / "schemas"


@lru_cache(maxsize=1)
def _classpath() -> str:
    """The reference implementation's jars (Maven caches the download in ~/.m2)."""
    assert shutil.which("mvn") and shutil.which("javac"), "`make test` installs Maven and a JDK"
    lib = Path("/tmp") / "q2c-avro-reference" / "lib"
    done = subprocess.run(["mvn", "-q", "-B", "-f", str(JAVA / "pom.xml"), "dependency:copy-dependencies", f"-Dlib.dir={lib}"],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:]
    return f"{lib}/*"


def java_read(files: list[Path]) -> tuple[dict[str, int], dict[str, str]]:
    """(event type → the fingerprint Java computes for its schema, file name → the record Java read)."""
    done = subprocess.run(["java", "-cp", _classpath(), str(JAVA / "SingleObjectDecode.java"), str(SCHEMAS), *map(str, files)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    fingerprints, records = {}, {}
    for line in done.stdout.splitlines():
        kind, name, value = line.split("\t", 2)
        if kind == "schema":
            fingerprints[name] = int(value)
        elif kind == "record":
            records[name] = value
    return fingerprints, records


def apache_read(event_type: str, payload: bytes) -> dict:
    """The body, read by Apache's Python implementation with the schema the header names."""
    schema = apache_schema.parse((SCHEMAS / f"{event_type}.avsc").read_text())
    return apache_io.DatumReader(schema).read(apache_io.BinaryDecoder(io.BytesIO(payload[10:])))


def _examples() -> dict[str, bytes]:
    """One message of each canonical type, from the rules' own outputs and a source row of each table."""
    from datetime import date

    from streams.state.mirror import SourceMirror
    from streams.state.processor import Processor
    from streams.testing.rows import every_row

    result = Processor(SourceMirror(), today=lambda: date(2026, 6, 1)).process(list(every_row()))
    return {e.event_type: avro.encode(e.event_type, e.model) for e in result.canonical if e.model is not None}


def test_the_header_carries_the_fingerprint_the_reference_implementation_computes(tmp_path):
    examples = _examples()
    files = []
    for event_type, payload in examples.items():
        (tmp_path / f"{event_type}.0.bin").write_bytes(payload)
        files.append(tmp_path / f"{event_type}.0.bin")
    fingerprints, records = java_read(files)
    assert set(fingerprints) == set(avro.EVENT_TYPES)
    for event_type, payload in examples.items():
        assert payload[:2] == b"\xc3\x01"
        assert payload[2:10] == struct.pack("<q", fingerprints[event_type]), event_type  # little-endian, as the spec says
        assert f"{event_type}.0.bin" in records
        assert apache_read(event_type, payload) == avro.decode(payload)[1]


def test_messages_written_with_the_old_reversed_header_are_still_read():
    for event_type, payload in _examples().items():
        old = payload[:2] + payload[2:10][::-1] + payload[10:]
        assert avro.decode(old) == avro.decode(payload), event_type


@pytest.mark.stack
def test_every_canonical_topic_is_read_by_the_reference_implementations(stack, firm, psa, ids, tmp_path):
    """A firm's users touch every table; what the sync publishes, Java and Apache's Python read."""
    n = ids()
    number = f"Q-J{n}"
    firm.account(n)
    firm.quote(n, n, number, "time_and_materials", "2026-01-01", "2026-12-31")
    firm.line(n * 10 + 1, n, 1, "role_rate", qty="100", price="100", role="CONS")
    firm.line(n * 10 + 2, n, 2, "milestone", price="500", code="M1", due="2026-06-30")
    firm.approve(n)
    pid = psa.project_of(number)["id"]
    psa.resource(n)
    psa.assign(n, pid, n, start="2026-01-01", end="2026-12-31")
    psa.time(n, pid, n, "8", day="2026-03-10")
    psa.expense(n, pid, n, "42.50")
    psa.period("202603", "O")
    cust = f"C{n % 10**9}"
    psa.customer(cust, f"ACC-{n:08d}")
    psa.invoice(f"I{n % 10**9}", cust, number, "120.00", [("MS", f"MS:{number}:M1", "100.00")])
    psa.receipt(f"R{n % 10**9}", f"I{n % 10**9}", cust, "120.00")
    eventually(lambda: firm.erp.one("select 1 from erp_inbound.receivable where invoice_number = %s and paid_amount = 120",
                                    f"I{n % 10**9}"), what="the invoice and its payment in the ERP")

    consumer = Consumer({**stack.s.kafka_client_config(), "group.id": f"reference-readers-{n}", "log_level": 0})
    files: dict[str, bytes] = {}
    try:
        for event_type in avro.EVENT_TYPES:
            topic = avro.topic_of(event_type)
            tp = TopicPartition(topic, 0)
            low, high = consumer.get_watermark_offsets(tp, timeout=10)
            assert high > low, f"nothing on {topic}"
            consumer.assign([TopicPartition(topic, 0, max(low, high - 20))])  # the newest twenty
            read = 0
            while read < min(20, high - low):
                for msg in consumer.consume(50, timeout=5):
                    if msg.error() is None and msg.value() is not None:
                        files[f"{event_type}.{msg.offset()}.bin"] = msg.value()
                    read += 1
    finally:
        consumer.close()
    for name, payload in files.items():
        (tmp_path / name).write_bytes(payload)
    fingerprints, records = java_read([tmp_path / name for name in sorted(files)])
    assert set(records) == set(files)
    assert {name.split(".")[0] for name in records} == set(avro.EVENT_TYPES)
    for name, payload in files.items():
        event_type = name.split(".")[0]
        assert payload[2:10] == struct.pack("<q", fingerprints[event_type])
        assert apache_read(event_type, payload) == avro.decode(payload)[1], name

import json
from datetime import UTC, date, datetime
from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.capture.envelope import UNAVAILABLE, UndecodableEvent, decode
from streams.capture.mapping import InvalidRow
from streams.capture.tables import mapping_for
from streams.state.mirror import SourceMirror


def envelope(after, op="c", before=None, lsn=1000, fields=None, table="gl_period", schema="finance"):
    struct = {"type": "struct", "fields": fields or [], "field": "after"}
    return json.dumps({
        "schema": {"type": "struct", "fields": [dict(struct, field="before"), struct]},
        "payload": {"before": before, "after": after, "op": op,
                    "source": {"lsn": lsn, "ts_us": 1795838201791753, "schema": schema, "table": table, "txId": 7}},
    }).encode()


PERIOD_FIELDS = [
    {"field": "start_dt", "name": "io.debezium.time.Date"}, {"field": "end_dt", "name": "io.debezium.time.Date"},
    {"field": "last_upd_ts", "name": "io.debezium.time.MicroTimestamp"},
]


def test_a_finance_row_is_trimmed_and_its_london_time_made_utc():
    row = {"period_cd": "202607", "start_dt": 20635, "end_dt": 20665, "status_cd": "O ", "last_upd_ts": 1784106000000000}
    change = decode("finance.finance.gl_period", b'{"period_cd":"202607"}', envelope(row, fields=PERIOD_FIELDS))
    model = mapping_for(change).to_model(change.row)
    assert model.start_dt == date(2026, 7, 1) and model.status_cd == "O"
    # 2026-07-15 09:00 London (BST, UTC+1) is 08:00 UTC
    assert model.last_upd_ts == datetime(2026, 7, 15, 8, 0, tzinfo=UTC)
    assert change.position == 1000 and change.committed_at.tzinfo is not None


def test_deletes_and_tombstones_are_changes_not_dropped():
    delete = decode("finance.finance.gl_period", b'{"period_cd":"202607"}', envelope(None, op="d", before={"period_cd": "202607"}))
    assert delete.deleted and delete.row is None and delete.key == {"period_cd": "202607"}
    tombstone = decode("finance.finance.gl_period", b'{"period_cd":"202607"}', None)
    assert tombstone.op == "t" and tombstone.deleted


def test_heartbeats_are_skipped():
    assert decode("__debezium-heartbeat.crm", b"{}", b"{}") is None


@pytest.mark.parametrize("value, reason", [
    (b"not json", "not JSON"), (b"[1]", "not a JSON object"),
    (json.dumps({"payload": {"op": "x", "source": {"lsn": 1}}}).encode(), "unknown operation"),
    (json.dumps({"payload": {"op": "c", "after": {}}}).encode(), "no source block"),
    (json.dumps({"payload": {"op": "u", "after": None, "source": {"lsn": 1}}}).encode(), "without an after image"),
])
def test_malformed_envelopes_raise_a_clear_error(value, reason):
    with pytest.raises(UndecodableEvent, match=reason):
        decode("crm.crm.quote", b'{"id":1}', value)


@given(st.binary(max_size=300), st.one_of(st.none(), st.binary(max_size=50)))
def test_the_decoder_never_fails_other_than_with_a_clear_error(value, key):
    try:
        decode("psa.psa.timesheet_entry", key, value)
    except UndecodableEvent:
        pass


rows = st.dictionaries(
    st.sampled_from(["id", "resource_id", "project_id", "work_date", "hours", "billable", "status", "extra"]),
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=6) | st.lists(st.integers(), max_size=2),
)


@given(st.sampled_from(["c", "r", "u", "d", "x", None]), rows, st.one_of(st.none(), st.integers(0, 10**9), st.text(max_size=3)))
def test_fuzzed_envelopes_are_applied_or_rejected_clearly(op, row, lsn):
    doc = {"payload": {"op": op, "after": row, "source": {"lsn": lsn}}}
    try:
        change = decode("psa.psa.timesheet_entry", b'{"id": 1}', json.dumps(doc).encode())
        if change is not None:
            SourceMirror().apply(change)
    except (UndecodableEvent, InvalidRow) as exc:
        assert str(exc)


def test_a_row_of_the_wrong_type_is_rejected_with_the_field_named():
    row = {"id": 1, "resource_id": 5, "project_id": 7, "work_date": "not a date", "hours": "8", "billable": True, "status": "approved"}
    change = decode("psa.psa.timesheet_entry", b'{"id":1}', envelope(row, table="timesheet_entry", schema="psa"))
    with pytest.raises(InvalidRow, match="work_date"):
        SourceMirror().apply(change)


def test_unknown_enum_values_are_rejected():
    row = {"id": 1, "resource_id": 5, "project_id": 7, "work_date": 20635, "hours": "8", "billable": True, "status": "teleported"}
    change = decode("psa.psa.timesheet_entry", b'{"id":1}', envelope(row, table="timesheet_entry", schema="psa",
                                                                    fields=[{"field": "work_date", "name": "io.debezium.time.Date"}]))
    with pytest.raises(InvalidRow, match="status"):
        SourceMirror().apply(change)


def test_an_older_change_never_overwrites_a_newer_one_and_toast_placeholders_keep_the_old_value():
    mirror = SourceMirror()
    fields = [{"field": "work_date", "name": "io.debezium.time.Date"}]
    base = {"id": 1, "resource_id": 5, "project_id": 7, "work_date": 20635, "hours": "8", "billable": True,
            "status": "approved", "description": "long text"}
    new = decode("psa.psa.timesheet_entry", b'{"id":1}', envelope(dict(base, hours="6"), lsn=200,
                                                                  table="timesheet_entry", schema="psa", fields=fields))
    old = decode("psa.psa.timesheet_entry", b'{"id":1}', envelope(base, lsn=100, table="timesheet_entry", schema="psa", fields=fields))
    assert mirror.apply(new) is not None
    assert mirror.apply(old) is None
    assert mirror.get("psa.timesheet_entry", 1).hours == D("6")
    toast = decode("psa.psa.timesheet_entry", b'{"id":1}', envelope(dict(base, hours="5", description=UNAVAILABLE), lsn=300,
                                                                    table="timesheet_entry", schema="psa", fields=fields))
    mirror.apply(toast)
    assert mirror.get("psa.timesheet_entry", 1).description == "long text"
    assert mirror.get("psa.timesheet_entry", 1).hours == D("5")


def incremental_read(after, sequence='["150","150"]'):
    """A read of an incremental snapshot (``q2c backfill``), as Debezium 3 writes it: no LSN, no
    transaction; ``sequence`` says where the stream stood."""
    return json.dumps({"before": None, "after": after, "op": "r", "source": {
        "lsn": None, "txId": None, "snapshot": "incremental", "sequence": sequence, "ts_us": 1795838201791753,
        "schema": "psa", "table": "timesheet_entry"}}).encode()


def test_a_backfill_read_is_current_where_it_stands_and_the_next_change_follows_it():
    """Debezium emits an incremental snapshot's read where it is current in the stream: it
    replaces what the mirror holds whatever that row's LSN, and the next change of the row,
    whose LSN may be below the stream position the read was emitted at, is applied after it."""
    mirror = SourceMirror()
    base = {"id": 1, "resource_id": 5, "project_id": 7, "work_date": "2026-07-01", "hours": "8", "billable": True,
            "status": "approved", "description": "x"}
    key = b'{"id":1}'
    mirror.apply(decode("psa.psa.timesheet_entry", key, schemaless(base, lsn=300, table="timesheet_entry", schema="psa")))
    read = decode("psa.psa.timesheet_entry", key, incremental_read(dict(base, hours="6")))
    assert read.current and read.position == 150 and read.transaction is None
    assert mirror.apply(read) is not None and mirror.get("psa.timesheet_entry", 1).hours == D("6")
    assert mirror.position("psa.timesheet_entry:1") == 301  # it changed the row: moved on, below any later LSN
    mirror.apply(decode("psa.psa.timesheet_entry", key, incremental_read(dict(base, hours="6"))))
    assert mirror.position("psa.timesheet_entry:1") == 301  # read again unchanged: left where it was
    later = decode("psa.psa.timesheet_entry", key, schemaless(dict(base, hours="4"), lsn=340, table="timesheet_entry", schema="psa"))
    assert mirror.apply(later) is not None and mirror.get("psa.timesheet_entry", 1).hours == D("4")
    older = decode("psa.psa.timesheet_entry", key, schemaless(dict(base, hours="9"), lsn=200, table="timesheet_entry", schema="psa"))
    assert mirror.apply(older) is None  # an older change is still stale
    fresh = SourceMirror()
    assert fresh.apply(decode("psa.psa.timesheet_entry", key, incremental_read(base, sequence=None))) is not None
    assert fresh.position("psa.timesheet_entry:1") == 0  # a row first seen by a backfill: any change follows it


def test_a_streamed_change_without_an_lsn_is_refused():
    value = json.dumps({"op": "u", "after": {"id": 1}, "source": {"lsn": None, "snapshot": "false"}}).encode()
    with pytest.raises(UndecodableEvent, match="no LSN"):
        decode("crm.crm.quote", b'{"id":1}', value)


def schemaless(after, lsn=1000, table="gl_period", schema="finance"):
    """What Debezium writes with ``value.converter.schemas.enable=false`` (the connectors' setting)."""
    return json.dumps({"before": None, "after": after, "op": "c",
                       "source": {"lsn": lsn, "ts_us": 1795838201791753, "schema": schema, "table": table, "txId": 7}}).encode()


def test_a_schemaless_finance_row_reads_as_the_same_model_as_with_its_schema():
    row = {"period_cd": "202607", "start_dt": 20635, "end_dt": 20665, "status_cd": "O ", "last_upd_ts": 1784106000000000}
    typed = decode("finance.finance.gl_period", b'{"period_cd":"202607"}', envelope(row, fields=PERIOD_FIELDS))
    bare = decode("finance.finance.gl_period", b'{"period_cd":"202607"}', schemaless(row))
    model = mapping_for(bare).to_model(bare.row)
    assert model == mapping_for(typed).to_model(typed.row)
    # the local timestamp (microseconds, no zone) is still read as London time
    assert model.start_dt == date(2026, 7, 1) and model.last_upd_ts == datetime(2026, 7, 15, 8, 0, tzinfo=UTC)


def test_schemaless_dates_and_zoned_timestamps_of_the_psa_and_the_crm_are_converted_by_the_model():
    entry = {"id": 1, "resource_id": 2, "project_id": 3, "work_date": 20513, "hours": "7.50", "billable": True,
             "status": "approved", "approved_at": "2026-03-02T09:30:00.123456Z", "updated_at": "2026-03-02T09:30:00Z"}
    change = decode("psa.psa.timesheet_entry", b'{"id":1}', schemaless(entry, table="timesheet_entry", schema="psa"))
    model = mapping_for(change).to_model(change.row)
    assert model.work_date == date(2026, 3, 1) and model.hours == D("7.50")
    assert model.approved_at == datetime(2026, 3, 2, 9, 30, 0, 123456, tzinfo=UTC)
    quote = {"id": 1, "quote_number": "Q-1", "account_id": 1, "opportunity_id": 1, "quote_type": "time_and_materials",
             "commercial_model": "time_and_materials", "status": "approved", "payment_terms_days": 30, "discount_pct": "0",
             "total_amount": "1000.00", "start_date": 20454, "end_date": 20818, "currency": "GBP",
             "approved_at": "2026-01-05T10:00:00Z", "updated_at": "2026-01-05T10:00:01Z", "revision": 1}
    change = decode("crm.crm.quote", b'{"id":1}', schemaless(quote, table="quote", schema="crm"))
    model = mapping_for(change).to_model(change.row)
    assert model.start_date == date(2026, 1, 1) and model.end_date == date(2026, 12, 31)
    assert model.source_updated_at == datetime(2026, 1, 5, 10, 0, 1, tzinfo=UTC)  # updated_at, renamed

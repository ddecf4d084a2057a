import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.capture.envelope import Provenance, RowChange, TransactionEnd, decode
from streams.capture.transactions import TransactionBuffer

CAPTURED = {"crm.quote", "crm.quote_line", "psa.timesheet_entry"}


def change(table="quote", key=1, tx="900", offset=0, lsn=None, source="crm", op="u"):
    return RowChange(source, source, table, op, {"id": key}, {"id": key}, lsn or 1000 + offset, None,
                     Provenance(f"{source}.{source}.{table}", 0, offset), transaction=tx)


def end(tx="900", source="crm", **counts):
    return TransactionEnd(source, tx, {f"{source}.{t}": n for t, n in counts.items()})


def test_a_transaction_is_released_whole_once_its_end_and_every_event_arrived():
    buffer = TransactionBuffer(CAPTURED)
    approved = change("quote", 1, offset=0)
    lines = [change("quote_line", k, offset=k) for k in (11, 12)]
    assert buffer.offer(approved, now=0) == []
    assert buffer.offer(lines[0], now=0) == []
    assert buffer.offer(end(quote=1, quote_line=2), now=0) == []  # one line still on its way
    released = buffer.offer(lines[1], now=0)
    assert sorted(released, key=lambda c: c.position) == sorted([approved, *lines], key=lambda c: c.position)
    assert buffer.open == {}


def test_end_before_the_changes_and_tables_not_captured_are_not_waited_for():
    buffer = TransactionBuffer(CAPTURED)
    assert buffer.offer(TransactionEnd("crm", "900", {"crm.quote": 1, "crm.opportunity": 3}), now=0) == []
    only = change("quote", 1)
    assert buffer.offer(only, now=0) == [only]


def test_a_tombstone_waits_with_the_delete_it_follows():
    buffer = TransactionBuffer(CAPTURED)
    delete = change("quote_line", 11, offset=5, op="d")
    tombstone = RowChange("crm", "crm", "quote_line", "t", {"id": 11}, None, 0, None, Provenance("crm.crm.quote_line", 0, 6))
    insert = change("quote_line", 11, offset=7, op="c")  # the row written again in the same transaction
    assert buffer.offer(delete, now=0) == []
    assert buffer.offer(tombstone, now=0) == [] and buffer.holding(tombstone)
    assert buffer.offer(insert, now=0) == []
    assert buffer.offer(end(quote_line=2), now=0) == [delete, tombstone, insert]
    assert buffer.row_holder == {}
    lone = RowChange("crm", "crm", "quote_line", "t", {"id": 99}, None, 0, None, None)
    assert buffer.offer(lone, now=0) == [lone]  # a tombstone with nothing held for its row


def test_changes_outside_transactions_pass_straight_through():
    buffer = TransactionBuffer(CAPTURED)
    snapshot = change(tx=None, op="r")
    assert buffer.offer(snapshot, now=0) == [snapshot]


def test_a_change_delivered_twice_counts_once_and_a_late_redelivery_passes_through():
    buffer = TransactionBuffer(CAPTURED)
    first, second = change("quote", 1, offset=0), change("quote_line", 2, offset=1)
    buffer.offer(first, now=0)
    buffer.offer(first, now=0)  # at-least-once: the same record again
    buffer.offer(change("quote", 1, offset=7, lsn=first.position), now=0)  # re-sent by Debezium at a new offset
    assert buffer.offer(end(quote=1, quote_line=1), now=0) == []
    assert len(buffer.offer(second, now=0)) == 2
    assert buffer.offer(first, now=5) == [first]   # after a restart: already released, apply again (idempotent)
    assert buffer.offer(end(quote=1, quote_line=1), now=5) == []
    assert buffer.open == {}


def test_transactions_of_different_sources_with_the_same_id_are_apart():
    buffer = TransactionBuffer(CAPTURED)
    crm = change("quote", 1, tx="900", source="crm")
    psa = change("timesheet_entry", 1, tx="900", source="psa")
    buffer.offer(crm, now=0)
    buffer.offer(psa, now=0)
    assert buffer.offer(end("900", "psa", timesheet_entry=1), now=0) == [psa]
    assert buffer.offer(end("900", "crm", quote=1), now=0) == [crm]


def test_the_wait_counts_from_the_first_change_not_from_an_end_read_ahead():
    buffer = TransactionBuffer(CAPTURED, overdue_after=30)
    buffer.offer(end(quote=1, quote_line=1), now=0)   # the marker topic read far ahead of a backlog
    assert not buffer.any_overdue(now=200) and buffer.release_overdue(now=200) == []
    first, second = change("quote", 1, offset=0), change("quote_line", 2, offset=1)
    assert buffer.offer(first, now=250) == []
    assert buffer.release_overdue(now=270) == []
    assert len(buffer.offer(second, now=275)) == 2
    buffer.offer(end("901", quote=1), now=300)        # a marker whose change never comes
    assert buffer.release_overdue(now=599) == [] and ("crm", "901") in buffer.open
    assert buffer.release_overdue(now=600) == [] and buffer.open == {}


def test_an_overdue_transaction_is_released_as_it_is():
    buffer = TransactionBuffer(CAPTURED, overdue_after=30)
    waiting = change("quote", 1)
    buffer.offer(waiting, now=100)
    assert not buffer.any_overdue(now=129) and buffer.release_overdue(now=129) == []
    assert buffer.any_overdue(now=130) and buffer.release_overdue(now=130) == [waiting]
    assert buffer.open == {}


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_any_arrival_order_releases_every_change_exactly_once_and_only_when_complete(data):
    """Two transactions over two table topics and the marker topic, interleaved in any order (each topic keeps its own order)."""
    t1 = [change("quote", 1, tx="1", offset=0), change("quote_line", 10, tx="1", offset=1), change("quote_line", 11, tx="1", offset=2)]
    t2 = [change("quote", 1, tx="2", offset=3), change("quote_line", 12, tx="2", offset=4)]
    ends = [end("1", quote=1, quote_line=2), end("2", quote=1, quote_line=1, opportunity=4)]
    streams = {"quote": [t1[0], t2[0]], "quote_line": [t1[1], t1[2], t2[1]], "transaction": ends}
    buffer = TransactionBuffer(CAPTURED)
    released: list[RowChange] = []
    while any(streams.values()):
        name = data.draw(st.sampled_from(sorted(n for n, s in streams.items() if s)))
        out = buffer.offer(streams[name].pop(0), now=0)
        for tx, members in (("1", t1), ("2", t2)):
            part = [c for c in out if c.transaction == tx]
            assert part == [] or sorted(part, key=lambda c: c.position) == sorted(members, key=lambda c: c.position)
        released.extend(out)
    assert sorted(released, key=lambda c: c.position) == sorted(t1 + t2, key=lambda c: c.position)
    assert buffer.open == {}


def test_debezium_markers_and_change_transactions_decode():
    """The shape Debezium 3 writes (read off the embedded stack): BEGIN is skipped, END counts
    by table; its id's LSN part differs from BEGIN's, so the transaction is the txId part."""
    def marker(status, tx_id, collections=None):
        return json.dumps({"schema": {}, "payload": {"status": status, "id": tx_id, "ts_ms": 1,
                                                       "event_count": sum(c["event_count"] for c in collections or []) or None,
                                                       "data_collections": collections}}).encode()
    assert decode("crm.transaction", b'{"id":"771:44992552"}', marker("BEGIN", "771:44992552")) is None
    marker_end = decode("crm.transaction", b'{"id":"771:44993080"}',
                        marker("END", "771:44993080", [{"data_collection": "crm.quote", "event_count": 2}]))
    assert marker_end == TransactionEnd("crm", "771", {"crm.quote": 2})
    value = json.dumps({"payload": {"op": "u", "after": {"id": 1}, "source": {"lsn": 5, "schema": "crm", "table": "quote"},
                                    "transaction": {"id": "771:44992552", "total_order": 1, "data_collection_order": 1}}}).encode()
    assert decode("crm.crm.quote", b'{"id": 1}', value).transaction == "771"

"""The held transactions' table, with a dict standing in for the Faust table (the real one is
exercised by tests/scenarios/test_source_transactions.py, kill -9 included)."""
import json
from types import SimpleNamespace

from streams.agents.held_transactions import HeldTransactions
from streams.capture.envelope import Provenance, TransactionEnd, decode


def record(topic, offset, key, value):
    return SimpleNamespace(key=key, value=value, message=SimpleNamespace(topic=topic, partition=0, offset=offset))


def quote_change(offset, quote_id, tx="700"):
    value = json.dumps({"payload": {"op": "u", "after": {"id": quote_id}, "source": {"lsn": 100 + offset},
                                    "transaction": {"id": f"{tx}:5", "total_order": 1, "data_collection_order": 1}}}).encode()
    key = json.dumps({"id": quote_id}).encode()
    event = record("crm.crm.quote", offset, key, value)
    return (("crm.crm.quote", 0, offset), event, decode("crm.crm.quote", key, value, Provenance("crm.crm.quote", 0, offset)))


def closed_ids(table: dict) -> list:
    assert all(key.startswith("closed/") for key in table), table
    return [i for key in sorted(table) for i in table[key]["ids"]]


def test_what_stays_open_is_persisted_restored_after_a_crash_and_forgotten_once_applied():
    table: dict = {}
    held = HeldTransactions(table, wait_s=60)
    assert held.offer([quote_change(1, 1)], now=0) == []
    assert set(table) == {"change/crm.crm.quote/0/1"}

    after_crash = HeldTransactions(table, wait_s=60)
    assert after_crash.restore(now=10) == []
    released = after_crash.offer([(("crm.transaction", 0, 9), None, TransactionEnd("crm", "700", {"crm.quote": 2})),
                                  quote_change(2, 2)], now=11)
    assert sorted(c.key["id"] for c in released) == [1, 2]
    first = next(c for c in released if c.key == {"id": 1})
    assert after_crash.record(first).offset == 1  # a dead letter keeps its origin
    after_crash.forget(released)
    assert closed_ids(table) == [["crm", "700"]]  # the id of the transaction applied, nothing else

    again = HeldTransactions(table, wait_s=60)
    again.restore(now=20)
    (redelivered,) = again.offer([quote_change(1, 1)], now=21)  # offsets not committed before a crash
    assert redelivered.key == {"id": 1} and closed_ids(table) == [["crm", "700"]]


def test_a_transaction_complete_within_its_batch_writes_only_its_id():
    table: dict = {}
    held = HeldTransactions(table, wait_s=60)
    released = held.offer([quote_change(1, 1, tx="701"), (("crm.transaction", 0, 3), None,
                                                           TransactionEnd("crm", "701", {"crm.quote": 1}))], now=0)
    assert len(released) == 1 and closed_ids(table) == [["crm", "701"]]


def test_only_the_latest_closed_transactions_are_remembered():
    table: dict = {}
    held = HeldTransactions(table, wait_s=60)
    held.buffer.remember = 2
    for i in range(4):
        held.offer([quote_change(i, i, tx=str(800 + i)), (("crm.transaction", 0, 100 + i), None,
                                                          TransactionEnd("crm", str(800 + i), {"crm.quote": 1}))], now=i)
    assert closed_ids(table) == [["crm", "802"], ["crm", "803"]]

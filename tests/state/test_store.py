"""The stores the mirror and the ledger keep their rows in: prefix scans in key order, and rows
read on demand through a bounded cache that never answers with a stale value."""
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.state.store import CachedStore, MemoryStore
from streams.testing import JsonTable


class Identity:
    uncached = ("k1",)  # these keys are read from the backend every time

    def encode(self, key, value):
        return value

    def decode(self, key, doc):
        return doc


def test_a_scan_returns_the_keys_under_its_prefix_in_order_and_nothing_past_it():
    for store in (MemoryStore(), CachedStore(JsonTable(), Identity(), size=2)):
        for key in ("crm.quote:2", "crm.quote_line:1", "crm.quote:10", "crm.quot", "ix|crm.quote|x|1|crm.quote:2"):
            store.put(key, key.upper())
        assert [k for k, _ in store.scan("crm.quote:")] == ["crm.quote:10", "crm.quote:2"]
        assert dict(store.scan("crm.quote:"))["crm.quote:2"] == "CRM.QUOTE:2"
        store.delete("crm.quote:10")
        store.delete("crm.quote:10")  # twice: nothing to delete the second time
        assert [k for k, _ in store.scan("crm.quote")] == ["crm.quote:2", "crm.quote_line:1"]
        assert store.get("crm.quote:10") is None and store.get("nothing") is None


keys = st.sampled_from([f"k{i}" for i in range(8)] + [f"k1{i}" for i in range(3)])
ops = st.lists(st.tuples(st.sampled_from(["put", "delete", "get", "scan"]), keys, st.integers(0, 5)), max_size=60)


@settings(max_examples=200, deadline=None)
@given(ops, st.integers(1, 4))
def test_a_cached_store_answers_as_the_heap_does_whatever_it_evicted(ops, size):
    heap, cached = MemoryStore(), CachedStore(JsonTable(), Identity(), size=size)
    for op, key, value in ops:
        if op == "put":
            heap.put(key, value), cached.put(key, value)
        elif op == "delete":
            heap.delete(key), cached.delete(key)
        elif op == "get":
            assert cached.get(key) == heap.get(key)
        else:
            assert list(cached.scan(key)) == list(heap.scan(key))
    assert list(cached.scan("")) == list(heap.scan(""))


def test_the_cache_holds_at_most_its_size_and_a_hot_row_costs_no_read():
    backend = JsonTable()
    store = CachedStore(backend, Identity(), size=3)
    for i in range(10):
        store.put(f"k{i}", i)
    assert len(store._cache) == 3
    reads = backend.reads
    assert [store.get("k9") for _ in range(5)] == [9] * 5 and backend.reads == reads
    assert store.get("k0") == 0 and backend.reads == reads + 1

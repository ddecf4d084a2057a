"""The state tables' keys: each reads back as what was written, keeps to its own range whatever
its components hold, and keeps the text tables written by earlier versions hold."""
from hypothesis import given
from hypothesis import strategies as st

from streams.state.keys import (
    ENGAGEMENT_PARTS,
    AccountKey,
    BadKey,
    ClosedKey,
    EngagementKey,
    EngagementRowKey,
    IndexKey,
    InvoiceKey,
    contract_of,
    ledger_key,
)
from streams.state.store import MemoryStore, PrefixView

text = st.text(alphabet=st.sampled_from("Q-1|%7C2,:/ é\\\""), min_size=1, max_size=8)
parts = st.sampled_from(ENGAGEMENT_PARTS)


@given(text, parts, text)
def test_an_engagement_key_reads_back_as_written(contract, part, item):
    for key in (EngagementKey(contract), EngagementKey(contract, part, item)):
        assert ledger_key(key.text) == key == EngagementKey.parse(key.text)
        assert contract_of(key.text) == contract


@given(text, text, parts, text)
def test_an_engagement_keeps_to_its_own_range(contract, other, part, item):
    key = EngagementKey(other, part, item).text
    assert key.startswith(EngagementKey.prefix(contract)) == (other == contract)
    assert key.startswith(EngagementKey.prefix(contract, part)) == (other == contract)


values = st.one_of(text.map(lambda t: (t,)), st.tuples(text, text))  # an index's values are of one kind


@given(text, text, values, values)
def test_an_index_value_keeps_to_its_own_range(ref, other_ref, value, other):
    value, other = (value[0], other[0]) if len(value) == len(other) == 1 else (value, other)
    key = IndexKey("crm.quote", "by_number", value, ref).text
    prefix = IndexKey.prefix("crm.quote", "by_number", value)
    assert key.startswith(prefix) and IndexKey.ref_in(key, prefix) == ref
    if other != value:
        assert not IndexKey("crm.quote", "by_number", other, other_ref).text.startswith(prefix)


@given(text, text)
def test_an_engagement_row_key_reads_back_as_written(contract, ref):
    key = EngagementRowKey(contract, ref)
    assert EngagementRowKey.parse(key.text) == key and contract_of(key.text) == contract
    assert key.text.startswith(EngagementRowKey.prefix(contract))


def test_the_text_of_plain_keys_is_what_earlier_versions_wrote():
    assert EngagementKey("Q-1").text == "eng:Q-1"
    assert EngagementKey("Q-1", "event", "TE:Q-1:7:ab").text == "eng:Q-1|event|TE:Q-1:7:ab"
    assert EngagementKey("Q-1", "linked", "psa.project:1").text == "eng:Q-1|linked|psa.project:1"
    assert InvoiceKey("I1").text == "inv:I1" and AccountKey(1).text == "acct:1"
    assert IndexKey("finance.gl_tax_rate", "by_code_country", ("STD", "GB"), "finance.gl_tax_rate:STD/GB/2000-01-01").text \
        == "ix|finance.gl_tax_rate|by_code_country|STD,GB|finance.gl_tax_rate:STD/GB/2000-01-01"
    assert EngagementRowKey("Q-1", "psa.project:1").text == "Q-1|psa.project:1"
    assert ClosedKey.parse(ClosedKey(42).text) == ClosedKey(42) and ClosedKey(42).text == "closed/00000000000000000042"


def test_a_key_of_no_kind_is_refused():
    for bad in ("nothing", "eng:Q-1|nopart|x", "closed"):
        try:
            ledger_key(bad) if not bad.startswith("closed") else ClosedKey.parse(bad)
        except BadKey as exc:
            assert repr(bad) in str(exc)
        else:
            raise AssertionError(f"{bad!r} was read as a key")


@given(st.dictionaries(text, st.integers(), max_size=6), text)
def test_a_prefix_view_maps_the_components_as_written(items, contract):
    store = MemoryStore()
    for ref, n in items.items():
        store.put(EngagementRowKey(contract, ref).text, n)
        store.put(EngagementRowKey(contract + "|", ref).text, -1)  # a neighbour's range
    view = PrefixView(store, EngagementRowKey.prefix(contract))
    assert dict(view.items()) == items and all(view[ref] == n for ref, n in items.items())

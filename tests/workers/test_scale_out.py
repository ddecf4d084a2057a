"""Scaling out on the real stack: two workers share the engagements (``Q2C_ENGAGEMENT_PARTITIONS=4``),
every billing scenario holds with them, and a worker killed mid-load loses and doubles nothing.

The two workers run beside the suite's own worker on the same Kafka and the same sources, as a
second Faust app (``Q2C_APP_ID``: its own consumer group, tables and routing topic partitions) that
writes to ERP and warehouse databases of its own (``erp_scaled``, ``warehouse_scaled``). PSA
provisioning and CRM account financials go to the firm's systems, as the suite's worker's do: the
same deterministic rows. The two first catch up with every change the suite wrote before them
(their catch-up time is printed)."""
import threading
import time

import pytest

from streams.kafka_io import worker_lag
from streams.stack.postgres import SYSTEMS_DIR
from streams.stack.process import kill_hard
from streams.stack.worker import FaustWorker
from streams.testing.firm import Db, Delivery, Firm, database_for_sync, dsn_of, eventually
from streams.testing.load import Load
from streams.topics import BY_ENGAGEMENT, source_topics
from tests.scenarios import test_billing

pytestmark = pytest.mark.stack

APP_ID = "q2c-sync-scaled"
PARTITIONS = 4


def _caught_up(settings) -> bool:
    return (worker_lag(settings, source_topics(), group=APP_ID) == 0
            and worker_lag(settings, [BY_ENGAGEMENT], group=APP_ID) == 0)


@pytest.fixture(scope="module")
def workers(stack):
    s = stack.s
    env = {
        "Q2C_APP_ID": APP_ID, "Q2C_ENGAGEMENT_PARTITIONS": str(PARTITIONS),
        "Q2C_ERP_DSN": database_for_sync(s, "erp_scaled", (SYSTEMS_DIR / "erp.sql").read_text()),
        "Q2C_WAREHOUSE_DSN": database_for_sync(s, "warehouse_scaled", None),
    }
    pair = [FaustWorker(s, f"worker-scaled-{i}", {**env, "Q2C_METRICS_PORT": str(s.metrics_port + 10 + i),
                                                   "Q2C_WORKER_WEB_PORT": str(s.worker_web_port + 10 + i)})
            for i in (1, 2)]
    started = time.monotonic()
    try:
        for worker in pair:
            worker.start()
        eventually(lambda: sum(w.metric("q2c_engagement_partitions_owned") for w in pair) == PARTITIONS
                   and all(w.metric("q2c_engagement_partitions_owned") for w in pair),
                   timeout=120, what="the two workers sharing the partitions")
        eventually(lambda: _caught_up(s), timeout=300, what="the two workers caught up with the suite's changes")
        print(f"two scaled-out workers caught up with the suite's changes in {time.monotonic() - started:.1f}s", flush=True)
        yield pair
    finally:
        for worker in pair:
            worker.stop()


@pytest.fixture(scope="module")
def scaled_firm(stack, firm, workers):
    """The firm's systems (the suite's, with its tax rate), with the ERP the two workers write."""
    scaled = Firm(stack.s)
    scaled.erp = Db(dsn_of(stack.s, "erp_scaled", "admin"))
    return scaled


BILLING_SCENARIOS = [getattr(test_billing, name) for name in dir(test_billing) if name.startswith("test_")]


@pytest.mark.parametrize("scenario", BILLING_SCENARIOS, ids=lambda f: f.__name__[len("test_"):])
def test_every_billing_scenario_holds_with_two_workers(scenario, scaled_firm, ids):
    scenario(scaled_firm, Delivery(scaled_firm), ids)


def test_the_engagements_are_shared_between_the_workers(workers, scaled_firm, ids):
    load = Load(base=ids(), engagements=8, entries_per_engagement=20)
    load.run(scaled_firm, Delivery(scaled_firm))
    eventually(lambda: load.verify(scaled_firm)["events"] >= 160, timeout=120, what="every event")
    assert [w.metric("q2c_engagement_partitions_owned") for w in workers] == [PARTITIONS / 2] * 2
    assert all(w.metric("q2c_engagements_derived_total") > 0 for w in workers)


def test_a_worker_killed_mid_load_loses_and_doubles_nothing(stack, workers, scaled_firm, ids):
    load = Load(base=ids(), engagements=8, entries_per_engagement=150)
    Load(base=load.base, engagements=8, entries_per_engagement=0).run(scaled_firm, Delivery(scaled_firm))
    victim = workers[1]
    writer = threading.Thread(target=load.run, args=(scaled_firm, Delivery(scaled_firm)))
    writer.start()
    time.sleep(3)
    kill_hard(victim.pidfile)  # the other worker takes its partitions once the group notices
    eventually(lambda: workers[0].metric("q2c_engagement_partitions_owned") == PARTITIONS, timeout=120,
               what="the surviving worker owning every partition")
    writer.join()
    time.sleep(2)  # its ports are released
    victim.start()
    eventually(lambda: load.verify(scaled_firm)["events"] >= 8 * 150, timeout=300, what="every event")
    eventually(lambda: _caught_up(stack.s), timeout=120, what="caught up")
    counts = load.verify(scaled_firm)
    assert (counts["lost"], counts["duplicated"], counts["wrong"]) == (0, 0, 0), counts
    assert counts["costs"] == 8 * 150 and counts["contracts"] == 8
    eventually(lambda: [w.metric("q2c_engagement_partitions_owned") for w in workers] == [PARTITIONS / 2] * 2,
               timeout=120, what="the partitions shared again after the restart")

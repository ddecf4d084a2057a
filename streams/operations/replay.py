"""``q2c replay --yes``: re-process every retained change event from the start.

The worker is stopped, its consumer group and state tables (mirror and ledger changelogs) are
deleted, and it is started again: it rebuilds the mirror from the first retained change and
derives every row again. The sinks' upserts write only rows that differ, so the ERP, PSA and CRM
end exactly as they were."""
from __future__ import annotations

import shutil
import time

from confluent_kafka.admin import AdminClient

from streams.agents.topics import APP_ID, CHANGELOGS
from streams.stack.manager import Stack


def replay_everything(stack: Stack, say=print) -> None:
    settings = stack.s
    say("stopping the worker")
    stack.worker.stop()
    admin = AdminClient({**settings.kafka_client_config(), "log_level": 0})
    for _ in range(60):  # the group must be empty before it can be deleted
        try:
            admin.delete_consumer_groups([APP_ID], request_timeout=10)[APP_ID].result()
            break
        except Exception as exc:  # noqa: BLE001
            if "GROUP_ID_NOT_FOUND" in str(exc):
                break
            time.sleep(1)
    existing = set(admin.list_topics(timeout=10).topics)
    doomed = [t for t in CHANGELOGS if t in existing]
    if doomed:
        for future in admin.delete_topics(doomed, operation_timeout=30).values():
            future.result()
        while set(doomed) & set(admin.list_topics(timeout=10).topics):
            time.sleep(0.5)
    shutil.rmtree(settings.home_dir / "faust", ignore_errors=True)
    say("state deleted; starting the worker to re-process from the first retained change")
    stack.worker.start()

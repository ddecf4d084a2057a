"""Faust's Kafka transport with one fix: after a rebalance, a partition the group never committed
is read again from its beginning, not from wherever the fetcher had got to.

Faust reads ahead while it restores tables after a rebalance, drops what it read for partitions
it is not yet streaming, and then "seeks the stream partitions to their committed offsets" to read
it again. aiokafka's ``seek_to_committed`` skips every partition without a committed offset (or
with offset 0: aio-libs/aiokafka#1003, open), so such a partition kept the position past the
dropped records: they were never handed to an agent. A fresh consumer group (a scaled-out worker's
first start, a new engagement partition, a replay that reset the group) sat idle with the events
unread, or, once a later event came, skipped the dropped ones: found as "the worker that stops
reading" (docs/design.md). Here such partitions go back to the start the group's
``auto_offset_reset`` names; a changelog partition is left to Faust's recovery, which places it
itself.
"""
from __future__ import annotations

import logging
from typing import Iterable, Mapping

import faust
from aiokafka import AIOKafkaConsumer, TopicPartition
from faust.transport.drivers import aiokafka as faust_aiokafka

log = logging.getLogger(__name__)


async def seek_to_committed(consumer: AIOKafkaConsumer, changelog_topics: Iterable[str],
                            reset: str = "earliest") -> Mapping[TopicPartition, int | None]:
    """Put every assigned stream partition at its committed offset, and one never committed at
    its beginning (``reset`` "earliest") or end ("latest"); the committed offsets, as aiokafka's."""
    committed = await consumer.seek_to_committed()
    changelogs = set(changelog_topics)
    streams = {tp: offset for tp, offset in committed.items() if tp.topic not in changelogs}
    for tp, offset in streams.items():
        if offset == 0:
            consumer.seek(tp, 0)
    never = [tp for tp, offset in streams.items() if offset is None]
    ahead = {tp: position for tp in never if (position := _fetch_position(consumer, tp))}
    if ahead:  # the case aiokafka leaves behind: records read ahead and dropped by Faust
        log.info("read again from the beginning (nothing committed yet): %s",
                 ", ".join(f"{tp.topic}:{tp.partition} (fetched up to {position})" for tp, position in ahead.items()))
    if never:
        await (consumer.seek_to_end if reset == "latest" else consumer.seek_to_beginning)(*never)
    return committed


def _fetch_position(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    """Where the fetcher is in ``tp`` (None when it has no position), without waiting for one."""
    try:
        return consumer._subscription.subscription.assignment.state_value(tp)._position
    except AttributeError:  # another aiokafka: the log line above is only lost
        return None


class ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    async def seek_to_committed(self) -> Mapping[TopicPartition, int | None]:
        return await self.call_thread(seek_to_committed, self._ensure_consumer(),
                                      self.app.tables.changelog_topics, self.app.conf.consumer_auto_offset_reset)


class Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> ConsumerThread:
        return ConsumerThread(self, loop=self.loop, beacon=self.beacon)


class Transport(faust_aiokafka.Transport):
    Consumer = Consumer


class App(faust.App):
    """``faust.App`` reading Kafka through the transport above."""

    def _new_transport(self) -> Transport:
        return Transport(self.conf.broker_consumer, self)

"""The drain loop's race, run eagerly: a hand-over that does not wait is done without the race,
one that waits is raced as Faust races it (a suspension of the flow cancels it), and errors
surface as they would."""
import asyncio

import pytest
from mode import Service
from mode.utils.locks import Event

from streams.agents.kafka_transport import EagerHandOver


class Raced(Service):
    """mode's race, counted."""
    races = 0

    async def wait_first(self, *coros, timeout=None):
        self.races += 1
        return await super().wait_first(*coros, timeout=timeout)


class Drain(EagerHandOver, Raced):
    def __init__(self):
        super().__init__()
        self.suspend_flow = Event()


def _run(body):
    return asyncio.run(body())


def test_a_hand_over_that_does_not_wait_is_done_without_a_race():
    async def body():
        drain, handed = Drain(), []

        async def hand_over(n):
            handed.append(n)
            return n

        results = await drain.wait_first(hand_over(1), drain.suspend_flow.wait())
        assert handed == [1] and results.results == [1] and not results.stopped
        assert drain.races == 0  # no race: no task, no futures
    _run(body)


def test_a_hand_over_that_waits_goes_on_from_where_it_stopped():
    async def body():
        drain, room = Drain(), asyncio.get_running_loop().create_future()
        steps = []

        async def hand_over():
            steps.append("started")
            value = await room           # a full stream queue
            steps.append(f"put {value}")
            await asyncio.sleep(0)
            return "done"

        asyncio.get_running_loop().call_later(0.05, room.set_result, 7)
        results = await drain.wait_first(hand_over(), drain.suspend_flow.wait())
        assert steps == ["started", "put 7"] and results.results == ["done"] and drain.races == 1
    _run(body)


def test_a_suspension_of_the_flow_cancels_a_hand_over_that_waits():
    async def body():
        drain, cancelled = Drain(), []

        async def hand_over():
            try:
                await asyncio.get_running_loop().create_future()  # never room
            except asyncio.CancelledError:
                cancelled.append(True)
                raise

        asyncio.get_running_loop().call_later(0.05, drain.suspend_flow.set)
        results = await asyncio.wait_for(drain.wait_first(hand_over(), drain.suspend_flow.wait()), 5)
        await asyncio.sleep(0)
        assert results.results == [True] and cancelled == [True]  # the suspension won; the hand-over was cancelled
    _run(body)


def test_an_error_of_the_hand_over_surfaces_whether_it_waited_or_not():
    async def body():
        drain = Drain()

        async def at_once():
            raise ValueError("undecodable")

        async def after_a_wait():
            await asyncio.sleep(0.01)
            raise ValueError("later")

        with pytest.raises(ValueError, match="undecodable"):
            await drain.wait_first(at_once(), drain.suspend_flow.wait())
        with pytest.raises(ValueError, match="later"):
            await drain.wait_first(after_a_wait(), drain.suspend_flow.wait())
    _run(body)


def test_other_races_and_a_suspended_flow_take_mode_s_way():
    async def body():
        drain, started = Drain(), []

        async def hand_over():
            started.append(True)

        drain.suspend_flow.set()
        results = await drain.wait_first(hand_over(), drain.suspend_flow.wait())
        assert len(results.done) == 2 and results.results[1] is True  # mode's race, both run as tasks
        other = Event()
        other.set()
        assert (await drain.wait_first(other.wait(), Event().wait())).results == [True]  # not the drain loop's race
    _run(body)

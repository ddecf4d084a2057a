"""The one commit protocol: its steps run in their order, a failed step stops the batch there and
is named, and what comes after it (the tables, the memory) is not written."""
import asyncio

import pytest

from streams.agents.commit import STEPS, Commit, CommitStepFailed, commit


def _recording(done: list[str], failing: str | None = None):
    def step(name):
        def run():
            if name == failing:
                raise ValueError(f"{name} broke")
            done.append(name)
        return run

    flushes = iter(["deliver", "changelog"])

    def flush():
        step(next(flushes))()

    return Commit(publish=step("publish"), sinks=step("sinks"), tables=step("tables"), memory=step("memory")), flush


def test_the_steps_run_in_the_protocols_order():
    done: list[str] = []
    asyncio.run(commit(*_recording(done)))
    assert done == list(STEPS) == ["publish", "sinks", "deliver", "tables", "changelog", "memory"]


@pytest.mark.parametrize("failing", STEPS)
def test_a_failed_step_is_named_and_nothing_after_it_runs(failing):
    done: list[str] = []
    with pytest.raises(CommitStepFailed, match=f"commit step '{failing}' failed: ValueError: {failing} broke") as raised:
        asyncio.run(commit(*_recording(done, failing)))
    assert raised.value.step == failing
    assert done == list(STEPS[:STEPS.index(failing)])
    assert isinstance(raised.value.__cause__, ValueError)


def test_a_pipeline_leaves_out_the_steps_it_has_no_part_in():
    flushed: list[int] = []
    asyncio.run(commit(Commit(), lambda: flushed.append(1)))
    assert flushed == [1, 1]  # still delivered twice: a batch with no outputs may have queued dead letters

"""The event loop's writer thread: outcomes reach their callers, queued work is written together, close drains."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import pytest

from rankstack.serving.loop_writer import LoopWriter, WriterClosedError


def test_each_caller_gets_its_own_outcome() -> None:
    """Results and per-item exceptions go to the caller that submitted the item, on the writer's thread."""
    threads: set[str] = set()

    def write(items: list[int]) -> list[int | Exception]:
        threads.add(threading.current_thread().name)
        return [ValueError(f"odd {i}") if i % 2 else i * 10 for i in items]

    async def main() -> list[int | BaseException]:
        writer: LoopWriter[int, int] = LoopWriter(write, name="test-writer")
        try:
            return await asyncio.gather(*(writer.submit(i) for i in range(6)), return_exceptions=True)
        finally:
            writer.close()

    outcomes = asyncio.run(main())
    assert outcomes[0::2] == [0, 20, 40]
    assert [str(e) for e in outcomes[1::2]] == ["odd 1", "odd 3", "odd 5"]
    assert threads == {"test-writer"}


def test_items_queued_during_a_write_share_the_next_one() -> None:
    """While one write runs, every item submitted meanwhile waits for it and then goes into one write."""
    started, release = threading.Event(), threading.Event()
    groups: list[list[int]] = []

    def write(items: list[int]) -> list[int]:
        groups.append(list(items))
        if len(groups) == 1:
            started.set()
            release.wait(5)
        return items

    async def main() -> list[int]:
        writer: LoopWriter[int, int] = LoopWriter(write)
        first = asyncio.ensure_future(writer.submit(0))
        await asyncio.to_thread(started.wait, 5)
        rest = [asyncio.ensure_future(writer.submit(i)) for i in range(1, 6)]
        await asyncio.sleep(0.05)
        assert writer.pending() == 5
        release.set()
        try:
            return await asyncio.gather(first, *rest)
        finally:
            writer.close()
            assert writer.writes == 2

    assert asyncio.run(main()) == [0, 1, 2, 3, 4, 5]
    assert groups == [[0], [1, 2, 3, 4, 5]]


@pytest.mark.parametrize("failure", [RuntimeError("disk gone"), "short"])
def test_a_failing_write_fails_every_item_in_it(failure: Exception | str) -> None:
    """A write that raises, or returns the wrong number of outcomes, fails each of its items (own exception copies);
    the write before it is unaffected."""
    started, gate = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def write(items: list[int]) -> list[int]:
        calls.append(list(items))
        if len(calls) == 1:  # hold the first write so that the next three share one
            started.set()
            gate.wait(5)
            return items
        if isinstance(failure, Exception):
            raise failure
        return items[:-1]

    async def main() -> list[int | BaseException]:
        writer: LoopWriter[int, int] = LoopWriter(write)
        first = asyncio.ensure_future(writer.submit(0))
        await asyncio.to_thread(started.wait, 5)
        rest = [asyncio.ensure_future(writer.submit(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0.05)
        gate.set()
        try:
            return await asyncio.gather(first, *rest, return_exceptions=True)
        finally:
            writer.close()

    outcomes = asyncio.run(main())
    assert outcomes[0] == 0
    assert calls == [[0], [1, 2, 3]]
    assert all(isinstance(o, RuntimeError) for o in outcomes[1:])
    assert len({id(o) for o in outcomes[1:]}) == 3


def _gated() -> tuple[threading.Event, list[int], Callable[[list[int]], list[int]]]:
    """A write that waits for the gate, then records its items and returns them unchanged."""
    gate, written = threading.Event(), []

    def write(items: list[int]) -> list[int]:
        gate.wait(5)
        written.extend(items)
        return items

    return gate, written, write


def test_close_writes_what_is_queued_then_refuses() -> None:
    """``close`` waits for queued items to be written; a later submit raises ``WriterClosedError``."""
    gate, written, write = _gated()

    async def main() -> None:
        writer: LoopWriter[int, int] = LoopWriter(write)
        pending = [asyncio.ensure_future(writer.submit(i)) for i in range(3)]
        await asyncio.sleep(0.02)
        gate.set()
        await asyncio.to_thread(writer.close)
        assert written == [0, 1, 2]
        assert await asyncio.gather(*pending) == [0, 1, 2]
        with pytest.raises(WriterClosedError):
            await writer.submit(9)

    asyncio.run(main())


def test_a_caller_that_gave_up_does_not_break_the_others() -> None:
    """A cancelled caller's item is still written; the other callers get their results."""
    gate, written, write = _gated()

    async def main() -> int:
        writer: LoopWriter[int, int] = LoopWriter(write)
        gone = asyncio.ensure_future(writer.submit(1))
        kept = asyncio.ensure_future(writer.submit(2))
        await asyncio.sleep(0.02)
        gone.cancel()
        gate.set()
        try:
            return await kept
        finally:
            writer.close()

    assert asyncio.run(main()) == 2
    assert sorted(written) == [1, 2]

"""Group commit's batching rules, with a writer that records what it was asked to write."""

from __future__ import annotations

import asyncio

import pytest

from keyhall.db.group_commit import GroupCommitter, Row
from keyhall.errors import ServiceUnavailableError
from loops import run_async


class Writer:
    def __init__(self, *, busy_turns: int = 0, fail: bool = False) -> None:
        self.batches: list[dict[str, list[Row]]] = []
        self.busy_turns = busy_turns
        self.fail = fail

    def __call__(self, rows: dict[str, list[Row]]) -> bool:
        if self.busy_turns:
            self.busy_turns -= 1
            return False
        if self.fail:
            raise RuntimeError("disk full")
        self.batches.append({sql: list(batch) for sql, batch in rows.items()})
        return True


def test_rows_of_one_turn_share_one_transaction() -> None:
    writer = Writer()
    committer = GroupCommitter(writer)

    async def scenario() -> None:
        await asyncio.gather(*(committer.write("INSERT a", (i,)) for i in range(10)))
        await committer.write("INSERT a", (10,))  # a later turn: a transaction of its own

    run_async(scenario)
    assert writer.batches == [{"INSERT a": [(i,) for i in range(10)]}, {"INSERT a": [(10,)]}]


def test_a_request_answers_only_after_its_row_is_written() -> None:
    writer = Writer(busy_turns=3)  # another writer holds the lock for a while
    committer = GroupCommitter(writer)
    seen: list[int] = []

    async def request(i: int) -> None:
        await committer.write("INSERT a", (i,))
        seen.append(len(writer.batches))  # what was written when this request went on

    async def scenario() -> None:
        first = asyncio.ensure_future(request(1))
        await asyncio.sleep(0)  # the batch opens and finds the lock taken
        second = asyncio.ensure_future(request(2))  # joins the batch still waiting
        await asyncio.gather(first, second)

    run_async(scenario)
    assert writer.batches == [{"INSERT a": [(1,), (2,)]}]
    assert seen == [1, 1]


def test_a_failed_write_fails_every_request_in_it_and_the_next_batch_starts_clean() -> None:
    writer = Writer(fail=True)
    committer = GroupCommitter(writer)

    async def scenario() -> list[BaseException | None]:
        results = await asyncio.gather(
            *(committer.write("INSERT a", (i,)) for i in range(3)), return_exceptions=True
        )
        writer.fail = False
        await committer.write("INSERT a", (99,))
        return list(results)

    results = run_async(scenario)
    assert all(isinstance(r, ServiceUnavailableError) for r in results)
    assert writer.batches == [{"INSERT a": [(99,)]}]


def test_statements_are_kept_apart_within_a_batch() -> None:
    writer = Writer()
    committer = GroupCommitter(writer)

    async def scenario() -> None:
        await asyncio.gather(
            committer.write("A", (1,)), committer.write("B", (2,)), committer.write("A", (3,))
        )

    run_async(scenario)
    assert writer.batches == [{"A": [(1,), (3,)], "B": [(2,)]}]


def test_each_event_loop_has_its_own_batch() -> None:
    writer = Writer()
    committer = GroupCommitter(writer)
    run_async(lambda: committer.write("A", (1,)))
    run_async(lambda: committer.write("A", (2,)))  # a new loop after the first closed
    assert writer.batches == [{"A": [(1,)]}, {"A": [(2,)]}]


@pytest.mark.parametrize("count", [1, 300])
def test_every_row_is_written_exactly_once(count: int) -> None:
    writer = Writer(busy_turns=2)
    committer = GroupCommitter(writer)

    async def scenario() -> None:
        await asyncio.gather(*(committer.write("A", (i,)) for i in range(count)))

    run_async(scenario)
    written = [row for batch in writer.batches for row in batch["A"]]
    assert sorted(written) == [(i,) for i in range(count)]

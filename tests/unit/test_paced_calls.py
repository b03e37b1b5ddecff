"""`Flows.paced`: the calls to Temporal that no answer waits for and nobody needs within
seconds (each over-booked class's flow told of its match at classroom entry, CLS-2, SD-5c)
reach Temporal at a bounded rate, so a classroom spike's thousands are sent after it rather
than during it; none is lost while the backlog has room."""

import asyncio
import logging
from collections.abc import Awaitable, Callable

import pytest

from api import flows as flows_module
from api.flows import Flows
from yueke.settings import Settings


def paced_flows(per_second: float) -> Flows:
    return Flows(Settings(database_url="unused", temporal_paced_calls_per_second=per_second))


async def test_a_burst_is_sent_at_the_paced_rate_and_none_is_lost() -> None:
    flows = paced_flows(per_second=40)
    loop = asyncio.get_running_loop()
    sent: list[float] = []
    all_sent = asyncio.Event()

    async def tell() -> None:
        sent.append(loop.time())
        if len(sent) == 20:
            all_sent.set()

    for _ in range(20):
        flows.paced(tell)
    await asyncio.wait_for(all_sent.wait(), 10)
    # 20 calls at 40 a second: 19 intervals of at least 25 ms between the first and the last.
    assert sent[-1] - sent[0] >= 19 * 0.025 * 0.95
    await flows.close()


async def test_a_full_backlog_drops_the_call_with_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(flows_module, "PACED_BACKLOG", 3)
    flows = paced_flows(per_second=0.001)
    sent: list[int] = []

    def tell(n: int) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            sent.append(n)

        return call

    with caplog.at_level(logging.WARNING, logger="api.flows"):
        for n in range(5):
            flows.paced(tell(n))
        await asyncio.sleep(0.05)
    # Three fit the backlog, the fourth and fifth are dropped; the pacer sends the first, then
    # waits its turn (1,000 s) for the next.
    assert sent == [0]
    assert "one dropped" in caplog.text
    await flows.close()
    assert sent == [0], "close drops what was not sent"


async def test_a_slow_temporal_keeps_the_backlog_queued_and_never_holds_up_a_later_call() -> None:
    """Paced calls that hang (Temporal slow or away) take at most their own few slots: the rest
    wait in the bounded queue, and a waiting student's wake (`later`) is sent at once."""
    flows = paced_flows(per_second=1000)
    answered = asyncio.Event()
    started: list[str] = []
    woke = asyncio.Event()

    def tell(n: int) -> Callable[[], Awaitable[None]]:
        async def call() -> None:
            started.append(f"tell {n}")
            await answered.wait()

        return call

    async def wake() -> None:
        woke.set()

    for n in range(10):
        flows.paced(tell(n))
    await asyncio.sleep(0.1)
    assert started == [f"tell {n}" for n in range(flows_module.DETACHED_AT_ONCE)]
    flows.later(wake)
    await asyncio.wait_for(woke.wait(), 1)
    answered.set()
    async with asyncio.timeout(5):
        while len(started) < 10:  # noqa: ASYNC110 - the calls are polled, not signalled
            await asyncio.sleep(0.01)
    await flows.close()

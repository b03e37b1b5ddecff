"""Production start-up: `python worker.py` says where it polls, waits for a Temporal that is not
up yet in one line a try (no traceback), serves the Temporal SDK's metrics, and stops on SIGTERM
or Ctrl-C with exit status 0 and no traceback; the API warns when it has no channel keys.

covers: -
"""

import asyncio
import logging
import os
import signal
import socket
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from api.app import create_app
from yueke.settings import Settings, dev_channel_keys

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Worker:
    """`python worker.py` with its output read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.output: list[str] = []

    @classmethod
    async def start(cls, **env: str) -> "Worker":
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            str(ROOT / "worker.py"),
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(process)

    async def said(self, text: str, seconds: float = 30) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(seconds):
            while not any(text in line for line in self.output):
                line = await self.process.stdout.readline()
                assert line, f"the worker exited before saying {text!r}: {self.output}"
                self.output.append(line.decode())

    async def stop(self, signum: signal.Signals) -> int:
        self.process.send_signal(signum)
        assert self.process.stdout is not None
        async with asyncio.timeout(30):
            rest = await self.process.stdout.read()
            self.output += rest.decode().splitlines(keepends=True)
            return await self.process.wait()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
async def test_worker_polls_serves_metrics_and_stops_gracefully(
    dev_server: WorkflowEnvironment, database_url: str, signum: signal.Signals
) -> None:
    queue = f"yueke-start-up-{uuid.uuid4().hex[:8]}"
    metrics = f"127.0.0.1:{free_port()}"
    worker = await Worker.start(
        DATABASE_URL=database_url,
        TEMPORAL_ADDRESS=dev_server.client.service_client.config.target_host,
        YUEKE_TEMPORAL_TASK_QUEUE=queue,
        YUEKE_WORKER_METRICS_ADDRESS=metrics,
    )
    try:
        await worker.said(f"worker polling task queue {queue} in namespace default")
        # The pollers show in the SDK's metrics once they have started, a moment after.
        async with httpx.AsyncClient() as http:
            for _ in range(50):
                scraped = (await http.get(f"http://{metrics}/metrics")).text
                polling = [
                    line for line in scraped.splitlines() if line.startswith("temporal_num_pollers")
                ]
                if any(f'task_queue="{queue}"' in line for line in polling):
                    break
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"no pollers of {queue} in the worker's metrics: {scraped}")
        assert await worker.stop(signum) == 0, worker.output
    finally:
        if worker.process.returncode is None:
            worker.process.kill()
    assert "worker stopped" in worker.output[-1], worker.output
    assert not any("Traceback" in line for line in worker.output), worker.output


async def test_worker_waits_for_temporal_in_one_line_a_try(database_url: str) -> None:
    worker = await Worker.start(
        DATABASE_URL=database_url, TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}"
    )
    try:
        await worker.said("is not reachable yet, retrying in")
        assert await worker.stop(signal.SIGTERM) == 0, worker.output
    finally:
        if worker.process.returncode is None:
            worker.process.kill()
    [waiting, *_] = [line for line in worker.output if "not reachable" in line]
    assert waiting.rstrip().endswith("Connection refused"), waiting
    assert not any("Traceback" in line for line in worker.output), worker.output


@pytest.mark.parametrize("keys", [{}, dev_channel_keys()], ids=["no keys", "keys"])
async def test_api_warns_at_start_without_channel_keys(
    database_url: str, caplog: pytest.LogCaptureFixture, keys: dict[str, object]
) -> None:
    app = create_app(Settings(database_url=database_url, channel_keys=keys))
    with caplog.at_level(logging.WARNING, logger="yueke.api"):
        async with app.router.lifespan_context(app):
            pass
    warned = [r.getMessage() for r in caplog.records if r.name == "yueke.api"]
    if keys:
        assert warned == []
    else:
        assert warned == [
            "no channel keys are set (YUEKE_CHANNEL_KEYS): every call will be refused "
            "401 unauthenticated"
        ]


async def test_metrics_sum_every_api_process(database_url: str) -> None:
    """`yueke api --workers 2`: whichever process answers /metrics, it counts the requests
    both processes served."""
    port = free_port()
    api = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "yueke",
        "api",
        "--workers",
        "2",
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DATABASE_URL": database_url,
            "YUEKE_API_PORT": str(port),
            "YUEKE_CHANNEL_KEYS": '{"k": "fireman"}',
        },
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base) as http:
            async with asyncio.timeout(60):
                while True:
                    try:
                        if (await http.get("/metrics")).status_code == 200:
                            break
                    except httpx.TransportError:
                        await asyncio.sleep(0.2)
            for _ in range(20):  # new connections, spread over both processes
                async with httpx.AsyncClient(base_url=base) as once:
                    r = await once.get("/v1/classes/1", headers={"X-Actor-Id": "1"})
                    assert r.status_code == 401
            line = 'http_requests_total{handler="/v1/classes/{class_id}",method="GET",status="401"}'
            for _ in range(6):
                async with httpx.AsyncClient(base_url=base) as once:
                    scraped = (await once.get("/metrics")).text
                [count] = [row.split()[-1] for row in scraped.splitlines() if row.startswith(line)]
                assert float(count) == 20
    finally:
        api.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            await api.wait()

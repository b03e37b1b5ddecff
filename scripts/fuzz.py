"""Fuzz every route of the API with schemathesis, against a fresh stack (run by scripts/fuzz).

1. A fresh database: `yueke_fuzz_<random>` on the server at FUZZ_DATABASE_URL or
   TEST_DATABASE_URL (created here, dropped at the end), else the dev stack's own embedded
   PostgreSQL in a temporary data directory.
2. `yueke dev --demo` on free ports (API, Temporal and its UI): migrations, the Temporal dev
   server, the worker, the API with the dev channel keys `dev-<channel>`, the demo data
   (teachers 1-3, students 1-2, their slots and credits), so that ids in paths sometimes exist.
3. `schemathesis run <api>/openapi.json` with the checks not_a_server_error (no 5xx) and
   status_code_conformance (every status answered is documented for its route), each request
   with `Authorization: Bearer dev-<channel>` and `X-Actor-Id` of a channel its route allows
   (scripts/fuzz_hooks.py). Bounded: --max-examples per operation and --max-time overall.
4. The figures: requests made, and the failures by check and by route; the reports (JUnit XML,
   NDJSON events, a pytest file reproducing each failure) stay in --report-dir.

Exit 0 when no check failed, 1 otherwise.
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CHECKS = "not_a_server_error,status_code_conformance"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def create_database(server: str) -> str:
    name = f"yueke_fuzz_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, query = server.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")


async def drop_database(server: str, url: str) -> None:
    name = url.partition("?")[0].rsplit("/", 1)[1]
    admin = await asyncpg.connect(server.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def wait_healthy(url: str, stack: subprocess.Popen[bytes], log: Path, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if stack.poll() is not None:
            sys.exit(f"yueke dev exited ({stack.returncode}):\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    sys.exit(f"the stack is not healthy after {seconds} s:\n{log.read_text()[-3000:]}")


def stop(stack: subprocess.Popen[bytes]) -> None:
    """Ctrl-C to the stack's own process group (yueke dev and its Temporal server), then
    kill -9 if it has not exited within 30 s."""
    if stack.poll() is not None:
        return
    os.killpg(stack.pid, signal.SIGINT)
    try:
        stack.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(stack.pid, signal.SIGKILL)
        stack.wait(timeout=10)


@dataclass
class Figures:
    """What a run did: requests made and their statuses; failing cases by check and route,
    with the statuses that failed and one example each."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    failed_statuses: dict[tuple[str, str], Counter[int]] = field(
        default_factory=lambda: defaultdict(Counter)
    )
    examples: dict[tuple[str, str], str] = field(default_factory=dict)


def figures(events: Path) -> Figures:
    found = Figures()
    with events.open() as lines:
        for line in lines:
            event = json.loads(line)
            if "ScenarioFinished" not in event:
                continue
            recorder = event["ScenarioFinished"].get("recorder", {})
            route = recorder.get("label", "?")
            interactions = recorder.get("interactions", {})
            for interaction in interactions.values():
                found.requests += 1
                found.statuses[(interaction.get("response") or {}).get("status_code")] += 1
            for case_id, checks in recorder.get("checks", {}).items():
                response = (interactions.get(case_id) or {}).get("response") or {}
                status = response.get("status_code")
                for check in checks:
                    if check.get("status") in ("success", "skip"):
                        continue
                    found.failures[check["name"]][route] += 1
                    found.failed_statuses[(check["name"], route)][status] += 1
                    if (check["name"], route) not in found.examples:
                        body = base64.b64decode((response.get("content") or {}).get("$base64", ""))
                        case = recorder.get("cases", {}).get(case_id, {}).get("value", {})
                        found.examples[(check["name"], route)] = (
                            f"{case.get('method')} {case.get('path')} "
                            f"query={case.get('query')} body={json.dumps(case.get('body'))[:300]}"
                            f" -> {status} {body[:300]!r}"
                        )
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-examples", type=int, default=20, help="per operation")
    parser.add_argument(
        "--max-time", type=int, default=600, help="seconds: fuzzing repeats until they are spent"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checks", default=CHECKS)
    parser.add_argument("--workers", default="2")
    parser.add_argument("--phases", default="examples,coverage,fuzzing")
    parser.add_argument("--report-dir", type=Path, default=ROOT / ".yueke" / "fuzz")
    parser.add_argument("extra", nargs="*", help="more schemathesis run arguments, after --")
    args = parser.parse_args()
    args.report_dir = args.report_dir.resolve()

    server = os.environ.get("FUZZ_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    database = asyncio.run(create_database(server)) if server else None
    args.report_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="yueke-fuzz-") as tmp:
        ports = {
            "YUEKE_API_PORT": free_port(),
            "YUEKE_TEMPORAL_PORT": free_port(),
            "YUEKE_TEMPORAL_UI_PORT": free_port(),
        }
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("YUEKE_", "TEMPORAL_")) and k != "DATABASE_URL"
        }
        env.update({k: str(v) for k, v in ports.items()}, YUEKE_DATA_DIR=f"{tmp}/stack")
        if database:
            env["DATABASE_URL"] = database
        log = args.report_dir / "stack.log"
        url = f"http://127.0.0.1:{ports['YUEKE_API_PORT']}"
        with log.open("wb") as out:
            stack = subprocess.Popen(
                [str(BIN / "yueke"), "dev", "--demo"],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_healthy(url, stack, log, 180)
            print(f"stack up: API {url}, database {database or 'embedded'}; log {log}")
            events = args.report_dir / "events.ndjson"
            command = [
                str(BIN / "schemathesis"),
                "run",
                f"{url}/openapi.json",
                "--checks",
                args.checks,
                "--max-examples",
                str(args.max_examples),
                "--max-time",
                str(args.max_time),
                "--seed",
                str(args.seed),
                "--workers",
                args.workers,
                "--phases",
                args.phases,
                "--request-timeout",
                "30",
                "--report",
                "junit,ndjson,pytest",
                "--report-dir",
                str(args.report_dir),
                "--report-ndjson-path",
                str(events),
                *args.extra,
            ]
            print("$", " ".join(command))
            hooks_env = {
                **os.environ,
                "SCHEMATHESIS_HOOKS": "fuzz_hooks",
                "PYTHONPATH": str(ROOT / "scripts"),
            }
            started = time.monotonic()
            # In the report folder: schemathesis keeps its cache of crashes (.schemathesis/)
            # in its working directory.
            ran = subprocess.run(
                command, env=hooks_env, cwd=args.report_dir, timeout=args.max_time + 300
            )
            print(f"schemathesis exited {ran.returncode} after {time.monotonic() - started:.0f} s")
            found = figures(events)
            print(f"\nrequests made: {found.requests}; statuses {dict(found.statuses)}")
            for check, routes in sorted(found.failures.items()):
                print(f"{check}: {sum(routes.values())} failing cases on {len(routes)} routes")
                for route, count in routes.most_common():
                    statuses = dict(found.failed_statuses[(check, route)])
                    print(f"  {count:5}  {route}  statuses {statuses}")
                    print(f"         e.g. {found.examples[(check, route)]}")
            if not found.failures:
                print(f"no failures of {args.checks}")
            return 0 if ran.returncode == 0 else 1
        finally:
            stop(stack)
            if database and server:
                asyncio.run(drop_database(server, database))


if __name__ == "__main__":
    sys.exit(main())

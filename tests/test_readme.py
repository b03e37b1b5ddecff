"""The README's curl walk-through, run as a reader runs it, against a fresh `yueke dev --demo`.

The test starts the dev stack as a subprocess (`.venv/bin/yueke dev --demo`) with its own data
directory and free ports; its PostgreSQL is a fresh database on the server at
TEST_DATABASE_URL when that is set (created and dropped here), else the stack's own embedded
one. Once /healthz answers, every ```sh block of README.md runs, in order, in ONE bash session
(so `Y`, `yk`, `DAY3`… persist from block to block), except the blocks in SKIPPED.

In that session `curl` is a shell function that calls the real curl, prints the body as curl
would (the README's `yk` prints only the body) and notes the HTTP status, the block and the
line of the call. A call whose README statement is followed by `# {...}` comment lines (or
ends in such a comment) must answer what is shown there, a partial pattern: objects need only
the keys shown, `...` is any value, any run of list items or any run of characters in a
string, `"<...>"` is any string; several `{...}` on the line are alternatives. Any answer
with a status >= 500 fails, and so does any 4xx or JSON `code` the README does not show for
that call. Finally the stack gets SIGINT, as Ctrl-C gives it, and must exit cleanly.

Two settings changed from the defaults, so that the walk-through runs whatever the clock
says: the classroom opens 1 h (not 15 min) before an over-booked class's start, so that the
classroom path (the student enters, is matched, the teacher is swapped) runs; the README shows
the answers before that window too, as conftest's live tests do. And the Monday dino-home
window (00:00-12:03 Asia/Shanghai) is empty, so that on a Monday morning next week's slots are
not kept from the walk-through's students nor its auto-booking run refused.
"""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

pytestmark = pytest.mark.readme

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

# Blocks that are not part of the curl walk-through, by the start of their first line.
SKIPPED = {
    "./scripts/dev --demo": "starts the stack (the test starts its own) and runs the tests",
    "YUEKE_RECORD_HISTORIES=1 ./scripts/test": "re-records the replay histories",
    "yueke migrate": "scaling out on several hosts",
}

STARTUP_TIMEOUT = 90.0  # `yueke dev`: migrations, the Temporal dev server, demo data
BLOCK_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0  # Ctrl-C until the whole stack has exited


# --- the README -----------------------------------------------------------------------------


@dataclass
class Statement:
    """One shell command of a block (with its continuation lines), and the answers shown
    after it."""

    first: int  # line numbers within the block, from 1
    last: int
    text: str
    expected: list["Pattern"] = field(default_factory=list)
    shown: str = ""


@dataclass
class Block:
    number: int  # 1-based, among the README's sh blocks
    line: int  # where it starts in README.md
    text: str
    statements: list[Statement]

    @property
    def marker(self) -> str:
        return self.text.splitlines()[0].strip()


def sh_blocks(readme: str) -> list[Block]:
    blocks = []
    for number, match in enumerate(re.finditer(r"^```sh\n(.*?)^```", readme, re.M | re.S), 1):
        line = readme.count("\n", 0, match.start(1)) + 1
        text = match.group(1)
        blocks.append(Block(number, line, text, statements(text)))
    return blocks


def _scan(line: str, quote: str | None) -> tuple[str | None, int | None]:
    """Shell quoting, enough for the README: the quote still open at the end of the line, and
    where a comment starts (outside quotes, at the start or after a blank)."""
    i = 0
    while i < len(line):
        c = line[i]
        if quote is None:
            if c == "#" and (i == 0 or line[i - 1] in " \t;"):
                return None, i
            if c in "'\"":
                quote = c
            elif c == "\\":
                i += 1
        elif quote == "'":
            if c == "'":
                quote = None
        elif c == "\\":
            i += 1
        elif c == '"':
            quote = None
        i += 1
    return quote, None


def statements(block: str) -> list[Statement]:
    lines = block.splitlines()
    found: list[Statement] = []
    i = 0
    while i < len(lines):
        if not lines[i].strip() or lines[i].lstrip().startswith("#"):
            i += 1
            continue
        first, quote, text = i, None, []
        while True:
            quote, comment = _scan(lines[i], quote)
            code = lines[i] if comment is None else lines[i][:comment]
            text.append(lines[i])
            if quote is None and not code.rstrip().endswith("\\"):
                break
            i += 1
        statement = Statement(first + 1, i + 1, "\n".join(text))
        shown = [lines[i][comment + 1 :].strip()] if comment is not None else []
        i += 1
        while i < len(lines) and lines[i].lstrip().startswith("#"):
            shown.append(lines[i].lstrip()[1:].strip())
            i += 1
        for comment_text in shown:
            if comment_text.startswith("{"):
                statement.expected += patterns(comment_text)
                statement.shown += comment_text
        found.append(statement)
    return found


# --- the answers the README shows: partial JSON -----------------------------------------------


class _Any:
    """`...`: any value; in a list, any run of items; in an object, the keys not shown."""

    def __repr__(self) -> str:
        return "..."


ANY = _Any()
Pattern = Any


class _Parser:
    def __init__(self, text: str) -> None:
        self.text, self.i = text, 0

    def blank(self) -> None:
        while self.i < len(self.text) and self.text[self.i] in " \t":
            self.i += 1

    def take(self, token: str) -> bool:
        self.blank()
        if self.text.startswith(token, self.i):
            self.i += len(token)
            return True
        return False

    def expect(self, token: str) -> None:
        if not self.take(token):
            raise ValueError(f"expected {token!r} at {self.i} in {self.text!r}")

    def value(self) -> Pattern:
        self.blank()
        if self.take("..."):
            return ANY
        if self.take("{"):
            members: dict[str, Pattern] = {}
            while not self.take("}"):
                if not self.take("..."):
                    key = self.value()
                    self.expect(":")
                    members[key] = self.value()
                if not self.take(","):
                    self.expect("}")
                    break
            return members
        if self.take("["):
            items: list[Pattern] = []
            while not self.take("]"):
                items.append(self.value())
                if not self.take(","):
                    self.expect("]")
                    break
            return items
        decoded, end = json.JSONDecoder().raw_decode(self.text, self.i)
        self.i = end
        return decoded


def patterns(comment: str) -> list[Pattern]:
    """The answers a comment shows: each `{...}` in it, the others being alternatives."""
    found = []
    at = comment.find("{")
    while at >= 0:
        parser = _Parser(comment[at:])
        found.append(parser.value())
        at = comment.find("{", at + parser.i)
    return found


def matches(pattern: Pattern, actual: Any) -> bool:
    if pattern is ANY:
        return True
    if isinstance(pattern, dict):
        return isinstance(actual, dict) and all(
            key in actual and matches(value, actual[key]) for key, value in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(actual, list) and _items_match(pattern, actual)
    if isinstance(pattern, str):
        if not isinstance(actual, str):
            return False
        if re.fullmatch(r"<[^<>]*>", pattern):
            return True
        return re.fullmatch(".*".join(map(re.escape, pattern.split("..."))), actual) is not None
    return type(pattern) is type(actual) and pattern == actual


def _items_match(pattern: list[Pattern], actual: list[Any]) -> bool:
    if not pattern:
        return not actual
    if pattern[0] is ANY:
        return any(_items_match(pattern[1:], actual[k:]) for k in range(len(actual) + 1))
    return bool(actual) and matches(pattern[0], actual[0]) and _items_match(pattern[1:], actual[1:])


def test_patterns_read_the_readme_notation() -> None:
    [opened] = patterns('{"opened":[{"id":127,...},{"id":128,...}],"skipped":["...T10:00:00Z"]}')
    assert matches(
        opened, {"opened": [{"id": 127, "x": 1}, {"id": 128}], "skipped": ["2T10:00:00Z"]}
    )
    assert not matches(opened, {"opened": [{"id": 127}], "skipped": ["2T10:00:00Z"]})
    assert not matches(opened, {"opened": [{"id": 127}, {"id": 128}], "skipped": ["T10:30:00Z"]})
    [coupons] = patterns('{"coupons":[{"id":1,...,"usable":false}]}   the rest')
    assert matches(coupons, {"coupons": [{"id": 1, "course_type": "major", "usable": False}]})
    assert not matches(coupons, {"coupons": [{"id": 1, "usable": 0}]})
    [results] = patterns('{"results":[{"error":{"code":"not_eligible",...}},...]}')
    assert matches(results, {"results": [{"error": {"code": "not_eligible"}}, {"booked": {}}]})
    refused, done = patterns('{"code":"class_not_finishable",...} until then; {"state":"done"}')
    assert (refused, done) == ({"code": "class_not_finishable"}, {"state": "done"})
    [hold] = patterns('{"class_id":8,"expires_at":"<now + 24 h>","teacher_id":null,"id":...}')
    assert matches(hold, {"class_id": 8, "expires_at": "2030", "teacher_id": None, "id": 3})
    assert not matches(hold, {"class_id": 8, "expires_at": "2030", "teacher_id": 1, "id": 3})


def test_every_readme_block_is_walked_or_skipped_on_purpose() -> None:
    markers = [block.marker for block in sh_blocks(README.read_text())]
    for skipped in SKIPPED:
        assert sum(m.startswith(skipped) for m in markers) == 1, f"skip marker {skipped!r}"
    walked = [m for m in markers if not m.startswith(tuple(SKIPPED))]
    assert walked and walked[0].startswith("Y="), "the walk-through starts by setting Y"


# --- the stack ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def empty_tables() -> None:
    """conftest's per-test truncation is for the tests' own database; this test has its own."""


@pytest.fixture
async def stack_database() -> AsyncIterator[str | None]:
    """A fresh database on TEST_DATABASE_URL's server for the stack, dropped afterwards; None
    (the stack starts its embedded PostgreSQL) without TEST_DATABASE_URL."""
    server = os.environ.get("TEST_DATABASE_URL")
    if not server:
        yield None
        return
    server = server.replace("postgresql+asyncpg://", "postgresql://")
    name = f"yueke_readme_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        base, _, query = server.partition("?")
        yield base.rsplit("/", 1)[0] + "/" + name + (f"?{query}" if query else "")
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@dataclass
class DevStack:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]


def yueke_command() -> list[str]:
    script = Path(sys.executable).parent / "yueke"
    return [str(script)] if script.exists() else [sys.executable, "-m", "yueke"]


@pytest.fixture
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="yueke-readme-") as path:
        yield Path(path)


@pytest.fixture
def dev_stack(stack_database: str | None, workdir: Path) -> Iterator[DevStack]:
    """`yueke dev --demo`, fresh, on free ports; stopped with SIGINT by the test itself."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("YUEKE_")
        and key not in ("DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE")
    }
    api_port = free_port()
    env.update(
        YUEKE_DATA_DIR=str(workdir / "data"),
        YUEKE_API_PORT=str(api_port),
        YUEKE_TEMPORAL_PORT=str(free_port()),
        YUEKE_TEMPORAL_UI_PORT=str(free_port()),
        YUEKE_RULES__OVERBOOKING__ENTRY_OPENS_BEFORE="PT1H",
        YUEKE_RULES__DINO_HOME_PRIORITY_UNTIL="00:00",
    )
    if stack_database:
        env["DATABASE_URL"] = stack_database
    log = workdir / "yueke-dev.log"
    with log.open("wb") as out:
        # Its own process group: SIGINT to the group is what Ctrl-C in its terminal sends.
        process = subprocess.Popen(
            [*yueke_command(), "dev", "--demo"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    stack = DevStack(process, f"http://127.0.0.1:{api_port}", log)
    try:
        wait_until_healthy(stack)
        yield stack
    finally:
        if process.poll() is None:  # the test failed before it stopped the stack
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_until_healthy(stack: DevStack) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    with httpx.Client(base_url=stack.url, timeout=2) as client:
        while time.monotonic() < deadline:
            if stack.process.poll() is not None:
                pytest.fail(f"yueke dev exited ({stack.process.returncode}):\n{stack.output()}")
            try:
                r = client.get("/healthz")
                if r.status_code == 200 and r.json() == {"database": "ok", "temporal": "ok"}:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
    pytest.fail(f"yueke dev not healthy after {STARTUP_TIMEOUT} s:\n{stack.output()}")


# --- one bash session -----------------------------------------------------------------------

# The test's `curl`: the real one, with the status noted. The README's `yk` calls it. Each call
# appends "block file, line, status, exit code, body file" to $YK_CALLS; a URL outside the test
# stack is refused (so the walk-through never touches a dev stack on the default port).
CURL_WRAPPER = r"""
curl() {
  local i line=0 body status rc arg
  for ((i = 1; i < ${#FUNCNAME[@]}; i++)); do
    if [[ ${FUNCNAME[i]} == source && ${BASH_SOURCE[i]} == "$YK_BLOCK" ]]; then
      line=${BASH_LINENO[i-1]}
    fi
  done
  for arg in "$@"; do
    if [[ $arg == *://* && $arg != "$YK_BASE"/* && $arg != "$YK_BASE" ]]; then
      printf '%s\t%s\t%s\t%s\t%s\n' "$YK_BLOCK" "$line" 000 99 "$arg" >> "$YK_CALLS"
      return 99
    fi
  done
  body=$(mktemp "$YK_DIR/body.XXXXXX")
  status=$(command curl -o "$body" -w '%{http_code}' "$@")
  rc=$?
  cat "$body"
  printf '%s\t%s\t%s\t%s\t%s\n' "$YK_BLOCK" "$line" "$status" "$rc" "$body" >> "$YK_CALLS"
  return $rc
}
"""


@dataclass
class Call:
    line: int
    status: int
    exit_code: int
    body: str

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


class Bash:
    """One bash process; each block is `source`d into it, its output kept apart."""

    def __init__(self, workdir: Path, base_url: str) -> None:
        self.dir = workdir
        self.calls = workdir / "calls.tsv"
        self.calls.touch()
        env = {
            **os.environ,
            # The README's python3 (NEXT=…) is a Python 3.11+, like this one.
            "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}",
            "YK_BASE": base_url,
            "YK_DIR": str(workdir),
            "YK_CALLS": str(self.calls),
        }
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.send(CURL_WRAPPER)

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def send(self, commands: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(commands + "\n")
        self.process.stdin.flush()

    def run(self, block: Block, base_url: str) -> tuple[int, str, str, list[Call]]:
        """Source the block; its exit code, stdout, stderr and the calls it made."""
        script = self.dir / f"block-{block.number:02}.sh"
        script.write_text(block.text)
        out, err = script.with_suffix(".out"), script.with_suffix(".err")
        done = f"__README_BLOCK_DONE_{block.number}__"
        seen = len(self.calls.read_text().splitlines())
        # After each block Y is the test stack's URL again (the README sets port 8000).
        self.send(
            f'YK_BLOCK={script}; source {script} >{out} 2>{err}; echo "{done} $?"; Y={base_url}'
        )
        deadline = time.monotonic() + BLOCK_TIMEOUT
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail(f"README block {block.number} (line {block.line}) still runs")
            if line.startswith(done):
                exit_code = int(line.split()[1])
                break
        calls = []
        for record in self.calls.read_text().splitlines()[seen:]:
            source, line_number, status, rc, body = record.split("\t")
            assert source == str(script), record
            calls.append(
                Call(
                    int(line_number),
                    int(status),
                    int(rc),
                    Path(body).read_text() if Path(body).is_file() else body,
                )
            )
        return exit_code, out.read_text(), err.read_text(), calls

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()  # type: ignore[union-attr]
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def problems_of(block: Block, exit_code: int, stderr: str, calls: list[Call]) -> list[str]:
    """What in the block's run disagrees with the README."""
    where = f"README.md block {block.number} (line {block.line})"
    found = []
    if exit_code != 0:
        found.append(f"{where}: exit code {exit_code}")
    if stderr.strip():
        found.append(f"{where}: wrote to stderr:\n{stderr.strip()}")
    answered: set[int] = set()
    for call in calls:
        owner = [s for s in block.statements if s.first <= call.line <= s.last]
        if not owner:
            found.append(f"{where}: a call from line {call.line}, outside any command")
            continue
        statement = owner[0]
        answered.add(id(statement))
        at = f"README.md line {block.line + statement.first - 1}: {statement.text.splitlines()[0]}"
        if call.exit_code != 0 or call.status == 0:
            found.append(f"{at}\n  curl failed ({call.exit_code}): {call.body}")
            continue
        answer = call.json()
        code = answer.get("code") if isinstance(answer, dict) else None
        if statement.expected:
            if not any(matches(p, answer) for p in statement.expected):
                found.append(
                    f"{at}\n  answered {call.status} {call.body}\n  README shows {statement.shown}"
                )
            elif call.status >= 500:
                found.append(f"{at}\n  answered {call.status} {call.body}")
        elif call.status >= 400 or code is not None:
            found.append(f"{at}\n  answered {call.status} {call.body}\n  README shows no refusal")
    for statement in block.statements:
        if statement.expected and id(statement) not in answered:
            found.append(f"{where}: `{statement.text.splitlines()[0]}` shows an answer, no call")
    return found


def test_readme_walk_through_on_a_fresh_dev_stack(dev_stack: DevStack, workdir: Path) -> None:
    blocks = [b for b in sh_blocks(README.read_text()) if not b.marker.startswith(tuple(SKIPPED))]
    bash = Bash(workdir, dev_stack.url)
    problems: list[str] = []
    try:
        for block in blocks:
            exit_code, _, stderr, calls = bash.run(block, dev_stack.url)
            problems += problems_of(block, exit_code, stderr, calls)
    finally:
        bash.close()

    started = time.monotonic()
    os.killpg(dev_stack.process.pid, signal.SIGINT)
    try:
        dev_stack.process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        problems.append(f"yueke dev still runs {STOP_TIMEOUT} s after Ctrl-C")
    else:
        if dev_stack.process.returncode != 0:
            problems.append(f"yueke dev exited with {dev_stack.process.returncode} on Ctrl-C")
        if "Traceback" in dev_stack.log.read_text(errors="replace"):
            problems.append("yueke dev logged a traceback")
    if problems:
        pytest.fail(
            "\n\n".join(problems) + f"\n\n--- yueke dev's last lines:\n{dev_stack.output()}",
            pytrace=False,
        )
    assert time.monotonic() - started < STOP_TIMEOUT

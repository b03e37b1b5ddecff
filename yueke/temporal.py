"""The Temporal client, configured by settings, with the pydantic data converter."""

import asyncio
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import NoReturn

from temporalio.client import Client, Interceptor, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import Runtime

from yueke.settings import Settings

log = logging.getLogger("yueke.temporal")


async def connect(
    settings: Settings,
    *,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    tls: TLSConfig | bool = settings.temporal_tls
    if settings.temporal_tls_cert and settings.temporal_tls_key:
        tls = TLSConfig(
            client_cert=settings.temporal_tls_cert.read_bytes(),
            client_private_key=settings.temporal_tls_key.read_bytes(),
        )
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        api_key=settings.temporal_api_key,
        tls=tls,
        data_converter=pydantic_data_converter,
        interceptors=interceptors,
        runtime=runtime,
    )


async def connect_when_up(
    settings: Settings,
    seconds: float | None = 60,
    *,
    interceptors: Sequence[Interceptor] = (),
    runtime: Runtime | None = None,
) -> Client:
    """Connect, retrying while the server starts (the dev stack, a worker started first): one
    log line per failed try after the first two seconds (a server that is starting says nothing),
    no traceback; after `seconds` (None: never) the last error."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = None if seconds is None else started + seconds
    pause = 0.5
    while True:
        try:
            return await connect(settings, interceptors=interceptors, runtime=runtime)
        except RuntimeError as exc:
            if deadline is not None and loop.time() > deadline:
                raise
            if loop.time() - started < 2:
                await asyncio.sleep(pause)
                continue
            reason = _reason(exc)
            log.warning(
                "Temporal at %s (namespace %s) is not reachable yet, retrying in %g s: %s",
                settings.temporal_target,
                settings.temporal_namespace,
                pause,
                reason,
            )
            await asyncio.sleep(pause)
            pause = min(pause * 2, 5.0)


def _reason(exc: Exception) -> str:
    """The core's error in a few words (`Connection refused`), not its nested debug dump."""
    text = str(exc) or exc.__class__.__name__
    said = re.search(r'message: "([^"]+)"', text)
    return said.group(1) if said else text.splitlines()[0][:200]


def exit_after_temporal(code: int = 0) -> NoReturn:
    """End a process that ran a Temporal client or worker, once everything has stopped, without
    the interpreter's teardown: the SDK's Rust threads can outlive the event loop and abort it
    ("PyGILState_Release", exit code -6, temporalio/sdk-python#300). Logs and output are
    flushed first."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

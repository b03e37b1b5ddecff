"""Serve the real booking API for the benchmarks: one uvicorn worker process.

    python -m bench.serve --database-url URL --port 8765 [--host 127.0.0.1]

The app is `api.app.create_app(Settings(database_url=URL, channel_keys=dev_channel_keys()))`,
with its heap settled after start-up as `yueke api`'s is (`settle_heap=True`); every other
setting (the DB pool size, the rules…) is the default or its YUEKE_* variable.
uvicorn runs with its defaults (asyncio loop and h11 unless uvloop / httptools are installed),
one worker, in this process, with the access log off and the log level at warning so that
logging costs nothing in the measurement. Temporal is not needed: the booking routes never use
it, and /healthz then answers 503 with {"database": "ok", "temporal": "error: …"}.
"""

import argparse

import uvicorn

from api.app import create_app
from yueke.settings import Settings, dev_channel_keys


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    settings = Settings(database_url=args.database_url, channel_keys=dev_channel_keys())
    uvicorn.run(
        lambda: create_app(settings, settle_heap=True),
        factory=True,
        host=args.host,
        port=args.port,
        workers=1,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()

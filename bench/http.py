"""A minimal HTTP/1.1 keep-alive client for load generation.

httpx costs the load generator about 3 CPU-ms a request, which on a 2-core machine takes the
cores the server under test needs; real classroom traffic comes from other machines. This
client does only what the benchmarks need: one request at a time per connection, bodies with
Content-Length (as uvicorn answers JSON).
"""

import asyncio
from urllib.parse import urlsplit


def lines(headers: dict[str, str]) -> str:
    """Header lines for `Connection.request`."""
    return "".join(f"{k}: {v}\r\n" for k, v in headers.items())


class Connection:
    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self._head = f"Host: {self.host}:{self.port}\r\n{lines(headers)}"
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self) -> "Connection":
        self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        return self

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def request(
        self, method: str, path: str, body: bytes = b"", headers: str = ""
    ) -> tuple[int, bytes]:
        """`headers`: more header lines for this request only, each ending in CRLF (`lines`)."""
        assert self._reader is not None and self._writer is not None, "open() first"
        self._writer.write(
            f"{method} {path} HTTP/1.1\r\n{self._head}{headers}"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        status = int((await self._reader.readline()).split()[1])
        length = 0
        while (line := await self._reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"transfer-encoding":
                raise ValueError("chunked responses are not supported")
        return status, await self._reader.readexactly(length)

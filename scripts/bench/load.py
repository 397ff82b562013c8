"""A closed-loop HTTP/1.1 load generator for `make bench`: N keep-alive connections on loopback, each sending its
next request as soon as the last answer arrives, for a fixed time. The connections open 5 ms apart: opened all in
one instant, the kernel hands nearly all of them to whichever worker wakes first (we saw 29 to 3), and a
closed loop then measures one worker.

It is written against raw sockets on uvloop so that the generator costs little of the two cores it shares with the
server under test: request bytes are built before the clock starts, and an answer is read by its Content-Length.
"""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import uvloop

RAMP_SECONDS = 0.005  # between two clients' first connections


@dataclass
class LoadResult:
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    ran_out: bool = False  # fewer prepared requests than the run could send: the rate is a floor

    @property
    def ok(self) -> int:
        return self.statuses.get(200, 0)

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def summary(self) -> dict[str, object]:
        return {
            "calls_per_s": round(self.rate, 1),
            "p50_ms": round(statistics.median(self.latencies_ms), 2) if self.latencies_ms else None,
            "p90_ms": round(self.percentile(90), 2),
            "p99_ms": round(self.percentile(99), 2),
            "answered": len(self.latencies_ms),
            "non_200": sum(n for s, n in self.statuses.items() if s != 200),
            "errors": sum(self.errors.values()),
            "ran_out": self.ran_out,
        }


def request_bytes(port: int, path: str, body: bytes, token: str | None) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _client(port: int, requests: Iterator[bytes], deadline: float, result: LoadResult, delay: float) -> None:
    await asyncio.sleep(delay)  # clients arrive one after another, as a connection pool fills: not all at once
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError as error:
        result.errors[type(error).__name__] += 1
        return
    try:
        while time.perf_counter() < deadline:
            try:
                request = next(requests)
            except StopIteration:
                result.ran_out = True
                return
            started = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            lowered = head.lower()
            at = lowered.find(b"content-length:")
            length = int(lowered[at + 15 : lowered.find(b"\r\n", at)]) if at >= 0 else 0
            await reader.readexactly(length)
            result.latencies_ms.append((time.perf_counter() - started) * 1000)
            result.statuses[status] += 1
    except (OSError, asyncio.IncompleteReadError, ValueError) as error:
        result.errors[type(error).__name__] += 1
    finally:
        writer.close()


async def _run(port: int, requests: Iterator[bytes], clients: int, result: LoadResult) -> LoadResult:
    started = time.perf_counter()
    deadline = started + result.seconds
    await asyncio.gather(*(_client(port, requests, deadline, result, i * RAMP_SECONDS) for i in range(clients)))
    result.seconds = time.perf_counter() - started
    return result


def run_load(
    port: int, requests: Iterator[bytes], clients: int, seconds: float, result: LoadResult | None = None
) -> LoadResult:
    """Drive `clients` connections for `seconds`; each request is taken once from `requests`. `result` may be
    given to watch the run from another thread (its latency list grows as answers arrive)."""
    return uvloop.run(_run(port, requests, clients, result or LoadResult(seconds)))


class Connection:
    """One blocking keep-alive connection, for latency samples taken one call at a time (interleaved)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def call(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        lowered = head.lower()
        at = lowered.find(b"content-length:")
        end = lowered.find(b"\r\n", at)
        length = int(lowered[at + 15 : end if end >= 0 else None]) if at >= 0 else 0
        while len(rest) < length:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("the server closed the connection")
            rest += chunk
        self.buffer = rest[length:]
        return int(head[9:12]), rest[:length]

    def _read(self) -> None:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()

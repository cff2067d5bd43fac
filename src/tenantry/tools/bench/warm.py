"""Filling every API worker's token cache before a measured run, so each side starts warm.

Each worker process has its own cache (auth/cache.py), and the kernel, not the client, decides
which worker accepts a connection. So the warmer opens keep-alive connections, asks the operating
system which worker holds the other end of each (psutil: the worker's socket whose remote port is
the client's local port), keeps a few per worker, and sends every token once over each worker's
connections: exactly one request per token per worker, a complete pass. If some worker is never
reached within a bounded number of connections (or the sockets cannot be read), it falls back to
sending every token over `workers * 3` connections, which reaches each worker with high
probability but not certainty; the result says which happened.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import psutil

from tenantry.tools.bench.servers import RunningServer

WARM_PATH = "/v1/whoami"  # verifies the token and reads nothing else: the cheapest way to fill the cache
CONNECTIONS_PER_WORKER = 4
MAX_CONNECT_ATTEMPTS_PER_WORKER = 16


@dataclass(frozen=True)
class WarmResult:
    tokens: int
    requests: int
    seconds: float
    workers_reached: int
    workers: int
    exact: bool  # every worker was seen to receive every token
    errors: int


def _owner_by_port(pids: Sequence[int], server_port: int) -> dict[int, int]:
    """Client port -> worker pid, for the connections the workers hold on the server's port."""
    owners: dict[int, int] = {}
    for pid in pids:
        try:
            sockets = psutil.Process(pid).net_connections(kind="tcp")
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        for sock in sockets:
            if sock.laddr and sock.raddr and sock.laddr.port == server_port:
                owners[sock.raddr.port] = pid
    return owners


async def _open(base_url: str) -> tuple[httpx.AsyncClient, int | None]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    client = httpx.AsyncClient(base_url=base_url, limits=limits, timeout=10.0)
    response = await client.get("/health/live")
    stream = response.extensions.get("network_stream")
    address = stream.get_extra_info("client_addr") if stream is not None else None
    return client, (int(address[1]) if address else None)


async def _send_all(client: httpx.AsyncClient, tokens: Sequence[str]) -> int:
    errors = 0
    for token in tokens:
        response = await client.get(WARM_PATH, headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 200:
            errors += 1
    return errors


async def warm_tokens(server: RunningServer, tokens: Sequence[str]) -> WarmResult:
    started = time.perf_counter()
    unique = list(dict.fromkeys(tokens))
    pids = server.worker_pids()
    per_worker: dict[int, list[httpx.AsyncClient]] = {pid: [] for pid in pids}
    spare: list[httpx.AsyncClient] = []
    try:
        attempts = 0
        limit = MAX_CONNECT_ATTEMPTS_PER_WORKER * len(pids)
        while attempts < limit and any(len(c) < CONNECTIONS_PER_WORKER for c in per_worker.values()):
            batch = min(len(pids), limit - attempts)
            opened = await asyncio.gather(*(_open(server.base_url) for _ in range(batch)))
            attempts += batch
            owners = _owner_by_port(pids, server.port)
            for client, port in opened:
                pid = owners.get(port) if port is not None else None
                if pid is not None and len(per_worker[pid]) < CONNECTIONS_PER_WORKER:
                    per_worker[pid].append(client)
                else:
                    spare.append(client)
        reached = sum(1 for clients in per_worker.values() if clients)
        exact = reached == len(pids)
        if exact:
            # Each worker's share of the tokens split over its connections: one request per token per worker.
            jobs = [
                _send_all(client, unique[i :: len(clients)])
                for clients in per_worker.values()
                for i, client in enumerate(clients)
            ]
            requests = len(unique) * len(pids)
        else:
            # Not knowable which worker is which: every token over workers * 3 connections.
            pool = [c for clients in per_worker.values() for c in clients] + spare
            chosen = pool[: max(1, server.workers * 3)]
            jobs = [_send_all(client, unique) for client in chosen]
            requests = len(unique) * len(chosen)
        errors = sum(await asyncio.gather(*jobs))
    finally:
        every = [c for clients in per_worker.values() for c in clients] + spare
        await asyncio.gather(*(client.aclose() for client in every))
    return WarmResult(
        tokens=len(unique),
        requests=requests,
        seconds=time.perf_counter() - started,
        workers_reached=reached,
        workers=len(pids),
        exact=exact,
        errors=errors,
    )

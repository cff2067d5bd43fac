"""What `tenantry serve` and `tenantry dev` check before they change or print anything.

Both take their listening port first, so a second `tenantry dev` on a taken port stops before it
migrates or prints a token, and `tenantry serve` refuses to start when it cannot log in as the app
role: otherwise it would serve, answer every request with 503, and say why only in /health/ready.
"""

from __future__ import annotations

import errno
import socket

from tenantry.db.connectivity import DatabaseUnreachable, check_connection
from tenantry.settings import Settings

# The token resolver is the first thing the API calls on every request: its presence means the
# schema was migrated, and calling pg_proc needs no privilege.
_SCHEMA_PRESENT = (
    "SELECT EXISTS (SELECT 1 FROM pg_proc WHERE proname = 'resolve_token' AND pronamespace = 'public'::regnamespace)"
)


class StartupError(Exception):
    """The service cannot start; `str()` is the one line to show."""


def bind_listening_socket(host: str, port: int) -> socket.socket:
    """Bind `host:port` (as uvicorn would) and return the socket, or say in one line why not."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise StartupError(f"cannot listen on {host}:{port}: the host does not resolve ({exc.strerror})") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            reason = "the port is already in use (another Tenantry, or another program): choose one with --port"
        elif exc.errno == errno.EACCES:
            reason = "permission denied (ports below 1024 need privileges)"
        elif exc.errno == errno.EADDRNOTAVAIL:
            reason = "no network interface has that address"
        else:
            reason = exc.strerror or str(exc)
        raise StartupError(f"cannot listen on {host}:{port}: {reason}") from None
    return sock


def ensure_port_free(host: str, port: int) -> None:
    bind_listening_socket(host, port).close()


async def check_app_database(settings: Settings) -> None:
    """Log in as the app role the way the API will (and as its token-cache listener will)."""
    try:
        migrated = await check_connection(settings.app_url, settings, query=_SCHEMA_PRESENT)
        if settings.auth_cache_enabled:
            await check_connection(settings.auth_listen_dsn, settings)
    except DatabaseUnreachable as exc:
        raise StartupError(f"cannot log in as the app role {settings.app_role!r}: {exc}") from None
    if not migrated:
        raise StartupError(
            f"the database has no Tenantry schema (logged in as {settings.app_role!r}): run `tenantry db upgrade` first"
        )


def serve_multiprocess_metrics(settings: Settings) -> None:
    """Export the metrics of every worker of `tenantry serve` on `metrics_host:metrics_port`.

    prometheus-client's multiprocess mode: each worker writes its values to files in
    PROMETHEUS_MULTIPROC_DIR (a fresh temporary folder unless the variable is set), and this
    process, uvicorn's supervisor, serves their sum from a thread. So a scrape sees all workers,
    and the API's own port never serves metrics. Must run before any worker starts.
    """
    import atexit
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from prometheus_client import CollectorRegistry, multiprocess, start_http_server, values

    ensure_port_free(settings.metrics_host, settings.metrics_port)
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        # Values left by an earlier run would be added to this one's (prometheus-client's rule).
        for stale in Path(directory).glob("*.db"):
            stale.unlink()
    else:
        directory = tempfile.mkdtemp(prefix="tenantry-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
        atexit.register(shutil.rmtree, directory, True)
    # prometheus-client picks its value store when first imported, maybe before the variable was
    # set: pick again, so that a single worker (run in this very process) writes to the files too.
    values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    start_http_server(settings.metrics_port, settings.metrics_host, registry=registry)

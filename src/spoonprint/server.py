"""Run the HTTP server and the printer workers in one process until SIGINT/SIGTERM, or until
`spoonprint stop` asks (see :mod:`spoonprint.stop_request`)."""

from __future__ import annotations

import errno
import logging
import socket

import uvicorn

from spoonprint import startup, stop_request
from spoonprint.app import Services, build
from spoonprint.config import Settings
from spoonprint.errors import ConfigError
from spoonprint.http.app import create_app
from spoonprint.http.protocol import guarded_protocol
from spoonprint.logs import setup_logging
from spoonprint.private import keep_private, make_private

log = logging.getLogger("spoonprint")


def serve(settings: Settings) -> None:
    # The port first: when it is taken nothing else is worth starting, and the owner gets one
    # sentence instead of uvicorn's error after a full start-up and shutdown.
    listener = listen(settings.server.host, settings.server.port)
    try:
        _serve(settings, listener)
    finally:
        listener.close()


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket; ConfigError saying what to do when it cannot be had."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        # create_server sets SO_REUSEADDR only where it cannot take a port another program
        # holds (not on Windows), so a port in use is found here on every platform.
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} is already in use (is spoonprint already running? "
                "`spoonprint status`), or set [server] port"
            ) from None
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}; check [server] host and port"
        ) from None


def _serve(settings: Settings, listener: socket.socket) -> None:
    keep_private()
    tightened = make_private(settings.server.data_dir)
    log_file = setup_logging(settings.server.data_dir, settings.server.log_level)
    if tightened:
        log.info(
            "made %d files and folders in %s private to this user",
            tightened,
            settings.server.data_dir,
        )
    services = build(settings)
    keys = services.auth.keys.list()
    if not any(k.revoked_at is None for k in keys) and settings.api_key is None:
        log.warning(
            "no API key exists: nobody can print. Run 'spoonprint init' or "
            "'spoonprint keys create NAME'"
        )
    log.info("logging to %s", log_file)
    security = settings.security
    app = create_app(services)
    stop_request.clear(settings.server.data_dir)
    startup.done()
    config = uvicorn.Config(
        app,
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        http=guarded_protocol(services.guard, security),
        # No WebSocket endpoint exists: an upgrade request is served as plain HTTP, through the
        # guard like any other, and the WebSocket library is never loaded (~50 ms of start-up).
        ws="none",
        # Short idle keep-alive: an internet-facing port should not hold idle sockets long.
        timeout_keep_alive=5,
        # No limit_concurrency: its 503 is plain text and counts everyone together, so one
        # address could use it all up. The protocol caps connections per address instead.
        server_header=False,
        # X-Forwarded-For is the guard's business, believed only from `trusted_proxies`;
        # uvicorn's own handling would believe it from 127.0.0.1 whatever the config says.
        proxy_headers=False,
        date_header=False,
        ssl_certfile=str(security.tls_cert) if security.tls_cert else None,
        ssl_keyfile=str(security.tls_key) if security.tls_key else None,
    )
    _Server(config, services).run(sockets=[listener])


class _Server(uvicorn.Server):
    """uvicorn's server, telling the services when it has started listening."""

    def __init__(self, config: uvicorn.Config, services: Services) -> None:
        super().__init__(config)
        self.services = services

    async def on_tick(self, counter: int) -> bool:
        # `spoonprint stop`'s request (how Windows asks): the same graceful stop as SIGTERM.
        if counter % 3 == 0 and stop_request.take(self.services.settings.server.data_dir):
            log.info("stop requested by 'spoonprint stop'")
            self.should_exit = True
        return await super().on_tick(counter)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            # uvicorn says where it listens only for the sockets it opened itself.
            scheme = "https" if self.config.is_ssl else "http"
            host, port = self.config.host, self.config.port
            log.info("listening on %s://%s:%d (Ctrl+C to stop)", scheme, host, port)
            self.services.warm_up()

"""Run the HTTP server and the printer workers in one process until SIGINT/SIGTERM, or until
`spoonprint stop` asks (see :mod:`spoonprint.stop_request`)."""

from __future__ import annotations

import logging
import socket

import uvicorn

from spoonprint import startup, stop_request
from spoonprint.app import Services, build
from spoonprint.config import Settings
from spoonprint.http.app import create_app
from spoonprint.http.protocol import guarded_protocol
from spoonprint.logs import setup_logging

log = logging.getLogger("spoonprint")


def serve(settings: Settings) -> None:
    log_file = setup_logging(settings.server.data_dir, settings.server.log_level)
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
        http=guarded_protocol(services.guard, security.header_timeout),
        # No WebSocket endpoint exists: an upgrade request is served as plain HTTP, through the
        # guard like any other, and the WebSocket library is never loaded (~50 ms of start-up).
        ws="none",
        # Short idle keep-alive: an internet-facing port should not hold idle sockets long.
        timeout_keep_alive=5,
        # Headers are small here; a huge header block is an attack, not an order.
        h11_max_incomplete_event_size=16 * 1024,
        limit_concurrency=200,
        server_header=False,
        # X-Forwarded-For is the guard's business, believed only from `trusted_proxies`;
        # uvicorn's own handling would believe it from 127.0.0.1 whatever the config says.
        proxy_headers=False,
        date_header=False,
        ssl_certfile=str(security.tls_cert) if security.tls_cert else None,
        ssl_keyfile=str(security.tls_key) if security.tls_key else None,
    )
    _Server(config, services).run()


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
            self.services.warm_up()

"""Run the HTTP server and the printer workers in one process until SIGINT/SIGTERM."""

from __future__ import annotations

import logging

import uvicorn

from spoonprint.app import build
from spoonprint.config import Settings
from spoonprint.http.app import create_app
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
    config = uvicorn.Config(
        create_app(services),
        host=settings.server.host,
        port=settings.server.port,
        log_config=None,
        # Short idle keep-alive: an internet-facing port should not hold idle sockets long.
        timeout_keep_alive=5,
        server_header=False,
    )
    uvicorn.Server(config).run()

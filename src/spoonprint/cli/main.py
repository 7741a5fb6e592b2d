"""The ``spoonprint`` command's entry point (the console script and ``python -m spoonprint``).

``spoonprint serve`` runs for long and is restarted by service managers, so its start-up
should cost only the server: when its options are plainly well formed it is run by
:mod:`spoonprint.cli.serve`, without typer, rich or the API client. Everything else, including
``spoonprint serve --help`` and any mistake in serve's options, goes to the typer application
in :mod:`spoonprint.cli.app`.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from spoonprint import startup
from spoonprint.private import keep_private


def run() -> None:
    startup.begin()
    keep_private()  # every command may create files in the data folder
    args = sys.argv[1:]
    if args[:1] == ["serve"]:
        from spoonprint.cli import serve

        parsed = serve.parse_args(args[1:], os.environ)
        if parsed is not None:
            sys.exit(serve.serve(parsed))
    from spoonprint.cli.app import app

    startup.done()  # the other commands are short: nothing to gain past the imports
    app()


def __getattr__(name: str) -> Any:
    # The typer application lived here: ``from spoonprint.cli.main import app`` still works,
    # importing it only when asked for, so that ``run`` stays light.
    if name == "app":
        from spoonprint.cli.app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""Build the server as ``spoonprint serve`` does, then exit: the work of a start-up without
the event loop, the port or the first request, for counting what that work costs.

Wall-clock start-up on a shared machine drifts by a quarter within minutes; instructions do
not. With valgrind installed::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python -m bench.build_app [spoonprint.toml]     # spoonprint
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python -m bench.build_app --bare                # the bare FastAPI app of bench.footprint

Run each in a fresh folder (the data folder is created next to the config file), with
spoonprint's modules byte-compiled, and read the ``I refs`` line valgrind prints at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path


def build_spoonprint(config: Path) -> object:
    from spoonprint import startup

    startup.begin()
    from spoonprint.config import load_settings

    settings = load_settings(config)
    import spoonprint.server  # noqa: F401  (what serve loads: uvicorn and the protocol too)
    from spoonprint.app import build
    from spoonprint.http.app import create_app
    from spoonprint.logs import setup_logging

    setup_logging(settings.server.data_dir, settings.server.log_level)
    app = create_app(build(settings))
    startup.done()
    return app


def build_bare() -> object:
    from bench.bare_app import app  # uvicorn and FastAPI, one route

    return app


def main() -> None:
    args = sys.argv[1:]
    if args == ["--bare"]:
        build_bare()
    else:
        build_spoonprint(Path(args[0] if args else "spoonprint.toml").resolve())


if __name__ == "__main__":
    main()

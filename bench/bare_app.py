"""The footprint reference: a bare FastAPI app on uvicorn with one ``GET /status`` route, what
any FastAPI service costs before it does anything of its own.

    python -m bench.bare_app PORT
"""

from __future__ import annotations

import sys

import uvicorn
from fastapi import FastAPI

app = FastAPI()


@app.get("/status")
def status() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")

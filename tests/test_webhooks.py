"""Webhooks against a fake receiver on 127.0.0.1: signed, in order, retried, none lost."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from spoonprint.emulator.virtual_printer import VirtualPrinterThread

from .conftest import ServerFactory

SECRET = "webhook-secret-for-tests"


class Receiver:
    """Answers 500 to the first ``refuse`` requests, then 204; records every request."""

    def __init__(self, refuse: int) -> None:
        self.refuse = refuse
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.accepted: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with receiver.changed:
                    receiver.requests.append((dict(self.headers), body))
                    ok = len(receiver.requests) > receiver.refuse
                    if ok:
                        receiver.accepted.append(json.loads(body))
                    receiver.changed.notify_all()
                self.send_response(204 if ok else 500)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def wait_for(self, count: int, timeout: float = 15) -> list[dict[str, Any]]:
        with self.changed:
            assert self.changed.wait_for(lambda: len(self.accepted) >= count, timeout)
            return list(self.accepted)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(refuse=2)
    yield r
    r.close()


def test_state_changes_reach_the_website_signed_and_in_order(
    make_server: ServerFactory, printer: VirtualPrinterThread, receiver: Receiver
) -> None:
    server = make_server(
        [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}],
        SPOONPRINT_WEBHOOKS__URL=receiver.url,
        SPOONPRINT_WEBHOOKS__SECRET=SECRET,
        SPOONPRINT_WEBHOOKS__RETRY_MAX="0.2",
    )
    job_id = server.client().post("/print", json={"text": "hi", "order_id": "W-1"}).json()["job_id"]
    events = receiver.wait_for(3)
    assert [(e["job_id"], e["state"]) for e in events[:3]] == [
        (job_id, "queued"), (job_id, "printing"), (job_id, "printed")
    ]  # fmt: skip
    assert events[0]["order_id"] == "W-1" and events[0]["printer"] == "kitchen"
    ids = [e["event_id"] for e in events]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert len(receiver.requests) >= 5  # the first two were refused and sent again
    for headers, body in receiver.requests:
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Spoonprint-Signature"], expected)


def test_only_the_chosen_states_are_sent(
    make_server: ServerFactory, printer: VirtualPrinterThread
) -> None:
    receiver = Receiver(refuse=0)
    try:
        server = make_server(
            [{"name": "kitchen", "uri": f"tcp://127.0.0.1:{printer.port}"}],
            SPOONPRINT_WEBHOOKS__URL=receiver.url,
            SPOONPRINT_WEBHOOKS__STATES='["printed", "failed"]',
        )
        client = server.client()
        first = client.post("/print", json={"text": "a"}).json()["job_id"]
        second = client.post("/print", json={"text": "b"}).json()["job_id"]
        events = receiver.wait_for(2)
        assert [(e["job_id"], e["state"]) for e in events] == [
            (first, "printed"), (second, "printed")
        ]  # fmt: skip
    finally:
        receiver.close()

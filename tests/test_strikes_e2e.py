"""What is a strike and what a blocked client gets, against a real server. The shop's network is
127.0.0.1 only; clients on 127.0.0.2 and up are "the internet" (as the shop's own developer
is, testing from home)."""

from __future__ import annotations

import calendar
import time

import httpx

from .conftest import ServerFactory
from .test_security_e2e import OUTSIDE, security_events
from .test_security_e2e import outside as fresh

SHOP_ONLY = {
    "SPOONPRINT_SECURITY__ALLOWED_NETWORKS": '["127.0.0.1/32"]',
    "SPOONPRINT_SECURITY__RATE_LIMIT_PER_MINUTE": "1000",
}


def answer(client: httpx.Client, path: str = "/printers") -> int | str:
    try:
        return client.get(path).status_code
    except httpx.TransportError:
        return "dropped"


def test_what_a_browser_asks_first_is_never_a_strike(make_server: ServerFactory) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__BLOCK_AFTER="2")
    browser = fresh(server)
    for _ in range(3):
        for path in ("/", "/docs", "/openapi.json", "/dashboard", "/printers", "/queue"):
            assert browser.get(path).status_code in (200, 302, 307, 401, 404), path
        # The same pages with a password the browser remembered wrong.
        for path in ("/docs", "/openapi.json"):
            assert browser.get(path, auth=("any", "sp_old")).status_code == 401
    assert answer(fresh(server, server.key)) == 200  # not blocked
    assert not [e for e in security_events(server) if e["event"] in ("strike", "blocked")]


def test_wrong_keys_block_and_the_blocked_client_is_told_why(make_server: ServerFactory) -> None:
    server = make_server(
        [],
        **SHOP_ONLY,
        SPOONPRINT_SECURITY__BLOCK_AFTER="3",
        SPOONPRINT_SECURITY__BLOCK_SECONDS="300",
    )
    for _ in range(3):
        assert answer(fresh(server, "sp_wrong")) == 401
    blocked = fresh(server, server.key).get("/printers")  # even with the right key
    assert blocked.status_code == 403
    assert blocked.headers["content-type"] == "application/json"
    body = blocked.json()
    assert body["error"] == "blocked"
    assert "blocked until" in body["detail"] and "wrong API key" in body["detail"]
    assert f"spoonprint security unblock {OUTSIDE}" in body["detail"]
    until = calendar.timegm(time.strptime(body["blocked_until"], "%Y-%m-%dT%H:%M:%SZ"))
    assert 290 < until - time.time() <= 301
    assert 290 < int(blocked.headers["retry-after"]) <= 301
    # A few such answers a minute; after that the connection is dropped unanswered.
    assert [answer(fresh(server, server.key)) for _ in range(4)] == [403, 403, "dropped", "dropped"]
    assert answer(server.client()) == 200  # the shop itself is unaffected


def test_a_keyless_request_to_a_real_route_is_no_strike_but_a_wrong_key_is(
    make_server: ServerFactory,
) -> None:
    server = make_server([], **SHOP_ONLY, SPOONPRINT_SECURITY__BLOCK_AFTER="2")
    for _ in range(4):
        assert fresh(server).post("/print", json={"text": "x"}).status_code == 401
        assert answer(fresh(server), "/jobs/1") == 401
    assert answer(fresh(server, server.key)) == 200
    wrong = fresh(server)
    assert wrong.post("/dashboard/sign-in", data={"key": "sp_guess"}).status_code == 401
    assert wrong.get("/metrics", headers={"X-API-Key": "sp_guess"}).status_code == 401
    assert fresh(server, server.key).get("/printers").status_code == 403  # blocked
    strikes = [e["detail"] for e in security_events(server) if e["event"] == "strike"]
    assert strikes == ["wrong API key (dashboard sign-in)", "wrong API key"]

"""Security headers on every answer (issue 16, part 4): JSON answers, which carry orders,
jobs and errors, are never sniffed, loaded as a page or cached; the dashboard keeps its own
policy. Real server, real sockets."""

from __future__ import annotations

import httpx

from .conftest import Server
from .test_dashboard import sign_in

JSON_POLICY = "default-src 'none'; frame-ancestors 'none'"


def assert_json_headers(answer: httpx.Response) -> None:
    assert answer.headers["content-type"].startswith("application/json"), answer
    assert answer.headers["x-content-type-options"] == "nosniff", answer.url
    assert answer.headers["content-security-policy"] == JSON_POLICY, answer.url
    assert answer.headers["cache-control"] == "no-store", answer.url


def test_json_answers_are_not_sniffed_framed_or_stored(server: Server) -> None:
    client = server.client()
    accepted = client.post("/print", json={"text": "hello", "order_id": "H-1"})
    assert accepted.status_code == 202
    job_id = accepted.json()["job_id"]
    answers = [
        accepted,
        client.post("/print", json={"text": "hello", "order_id": "H-1"}),  # 200 duplicate
        client.get(f"/jobs/{job_id}"),
        client.get("/queue"),
        client.get("/printers"),
        client.get("/status"),
        client.post("/print", json={"text": 1}),  # 422
        client.post("/print", content=b"{", headers={"Content-Type": "application/json"}),
        server.client(key=None).get("/queue"),  # 401
        client.get("/jobs/999999"),  # 404 from the app
        client.get("/wp-login.php"),  # 404 from the guard
    ]
    for answer in answers:
        assert_json_headers(answer)


def test_the_dashboard_keeps_its_own_policy(server: Server) -> None:
    client, _ = sign_in(server)
    page = client.get("/dashboard")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"
    assert_json_headers(client.get("/dashboard/api/state"))
    script = client.get("/dashboard/static/dashboard.js")
    assert script.headers["x-content-type-options"] == "nosniff"

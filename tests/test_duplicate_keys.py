"""A JSON body that gives a key twice is refused with 400 saying which key, on the order
intake and on FastAPI's routes alike (issue 16, part 4). Real server, real sockets."""

from __future__ import annotations

import pytest

from .conftest import Server

JSON = {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("path", "body", "key"),
    [
        ("/print", b'{"text": "a", "text": "b"}', "text"),
        ("/print", b'{"receipt": {"items": [{"name": "x", "qty": 1, "qty": 9}]}}', "qty"),
        ("/preview", b'{"text": "a", "text": "b"}', "text"),
    ],
)
def test_a_key_given_twice_is_refused(server: Server, path: str, body: bytes, key: str) -> None:
    client = server.client()
    answer = client.post(path, content=body, headers=JSON)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == "body is not valid JSON"
    messages = [problem["message"] for problem in answer.json()["detail"]]
    assert any(f"duplicate key '{key}'" in message for message in messages), messages


def test_the_same_key_in_different_objects_is_fine(server: Server) -> None:
    body = b'{"receipt": {"items": [{"name": "a"}, {"name": "b"}]}, "order_id": "D-1"}'
    answer = server.client().post("/print", content=body, headers=JSON)
    assert answer.status_code == 202, answer.text

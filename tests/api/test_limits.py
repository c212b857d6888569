"""Request bodies over 1 MiB are refused with 413, whether declared up front or streamed in chunks."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from lightctl.api.limits import MAX_BODY_BYTES
from tests.api.conftest import ThreadServer, bearer

LOGIN = "/api/v1/session"


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        sent += n
        yield b" " * n


def test_a_declared_body_over_the_limit_is_413(server: ThreadServer) -> None:
    body = b'{"token": "' + b"x" * MAX_BODY_BYTES + b'"}'
    with httpx.Client(timeout=10) as client:
        response = client.post(server.url + LOGIN, content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "detail" in response.json()


def test_a_chunked_body_over_the_limit_is_413(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.post(
            server.url + LOGIN,
            content=chunks(MAX_BODY_BYTES + 1),  # a generator: sent chunked, with no Content-Length
            headers={"Content-Type": "application/json", **bearer("admin")},
        )
    assert response.status_code == 413
    assert response.json()["detail"].startswith("request body larger than")


def test_a_body_of_exactly_the_limit_is_read(server: ThreadServer) -> None:
    # 1 MiB of JSON whitespace around a valid login: accepted up to the byte, so the limit is not lower.
    payload = b'{"token": "test-viewer-token"}'
    padded = payload + b" " * (MAX_BODY_BYTES - len(payload))
    assert len(padded) == MAX_BODY_BYTES
    with httpx.Client(timeout=10) as client:
        declared = client.post(
            server.url + LOGIN, content=padded, headers={"Content-Type": "application/json"}
        )
        streamed = client.post(
            server.url + LOGIN,
            content=iter([payload, *chunks(MAX_BODY_BYTES - len(payload))]),
            headers={"Content-Type": "application/json"},
        )
    assert declared.status_code == 200
    assert streamed.status_code == 200


def test_an_oversized_body_is_refused_before_the_handler_runs(server: ThreadServer) -> None:
    # Logout does not read its body; a declared oversized body must still not log anyone out.
    with httpx.Client(timeout=10) as client:
        client.post(server.url + LOGIN, json={"token": "test-viewer-token"})
        refused = client.request(
            "DELETE",
            server.url + LOGIN,
            content=b"x" * (MAX_BODY_BYTES + 1),
            headers={"Content-Type": "text/plain"},
        )
        assert refused.status_code == 413
        assert client.get(server.url + LOGIN).status_code == 200

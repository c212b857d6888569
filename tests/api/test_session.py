"""Logging in for a session cookie, using it on the API and the event stream, logging out; tokens in URLs."""

from __future__ import annotations

import time
from http.cookies import SimpleCookie

import httpx

from lightctl.api.auth import FailureThrottle, TokenBook
from lightctl.api.session import COOKIE, SessionStore
from tests.api.conftest import TOKEN_LIST, TOKENS, ThreadServer, bearer


def login(client: httpx.Client, base: str, role: str) -> httpx.Response:
    return client.post(f"{base}/api/v1/session", json={"token": TOKENS[role]})


def test_login_sets_a_strict_httponly_session_cookie(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        response = login(client, server.url, "maintenance")
    assert response.status_code == 200
    assert response.json()["name"] == "maintenance-user"
    assert response.json()["role"] == "maintenance"
    header = response.headers["set-cookie"]
    morsel = SimpleCookie(header)[COOKIE]
    attributes = {part.strip().split("=")[0].lower() for part in header.split(";")}
    assert "httponly" in attributes
    assert morsel["samesite"].lower() == "strict"
    assert morsel["path"] == "/"
    assert "secure" not in attributes  # plain http on loopback: a Secure cookie would never come back
    assert int(morsel["max-age"]) == 12 * 3600  # api.session_hours default
    # The cookie is a random id, not the token, and differs on every login.
    assert TOKENS["maintenance"] not in header
    with httpx.Client(timeout=10) as client:
        again = login(client, server.url, "maintenance")
    assert SimpleCookie(again.headers["set-cookie"])[COOKIE].value != morsel.value


def test_the_cookie_is_accepted_by_the_api_with_its_role(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{server.url}/api/v1/devices").status_code == 401
        login(client, server.url, "viewer")
        assert client.get(f"{server.url}/api/v1/devices", params={"limit": 1}).status_code == 200
        me = client.get(f"{server.url}/api/v1/session").json()
        assert (me["name"], me["role"], me["via"]) == ("viewer-user", "viewer", "cookie")
        assert me["expires"] is not None
        # A viewer's cookie does not open an admin endpoint.
        assert client.get(f"{server.url}/api/v1/audit").status_code == 403


def test_the_cookie_is_accepted_by_the_event_stream(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        with client.stream("GET", f"{server.url}/api/v1/events") as refused:
            assert refused.status_code == 401
        login(client, server.url, "viewer")
        with client.stream("GET", f"{server.url}/api/v1/events") as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            first = next(stream.iter_lines())
            assert first.startswith("retry:")


def test_logout_ends_the_session_for_the_api(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        login(client, server.url, "operator")
        stolen = client.cookies[COOKIE]
        out = client.delete(f"{server.url}/api/v1/session")
        assert out.status_code == 204
        assert COOKIE not in client.cookies  # the browser is told to forget it
        assert client.get(f"{server.url}/api/v1/session").status_code == 401
    # A copy of the cookie taken before logout is worthless afterwards.
    with httpx.Client(timeout=10, cookies={COOKIE: stolen}) as other:
        assert other.get(f"{server.url}/api/v1/devices").status_code == 401


def test_logout_ends_an_open_event_stream(district: object) -> None:
    from lightctl.api.app import create_app
    from lightctl.api.events import hub_of
    from tests.api.conftest import make_services

    app = create_app(make_services(district))  # type: ignore[arg-type]
    hub_of(app).heartbeat_s = 0.2  # the session is checked at least every heartbeat
    with ThreadServer(app) as server, httpx.Client(timeout=10) as client:
        login(client, server.url, "viewer")
        cookie = client.cookies[COOKIE]
        with (
            httpx.Client(timeout=10, cookies={COOKIE: cookie}) as watcher,
            watcher.stream("GET", f"{server.url}/api/v1/events") as stream,
        ):
            assert stream.status_code == 200
            lines = stream.iter_lines()
            next(lines)
            client.delete(f"{server.url}/api/v1/session")
            started = time.monotonic()
            for _ in lines:  # ends when the server closes the stream
                assert time.monotonic() - started < 5, "stream still open 5 s after logout"
        assert server.call(lambda: hub_of(app).clients) == 0


def test_a_wrong_token_gets_no_cookie(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        response = client.post(f"{server.url}/api/v1/session", json={"token": "not-a-token"})
    assert response.status_code == 401
    assert "set-cookie" not in response.headers


def test_a_forged_cookie_is_401(server: ThreadServer) -> None:
    with httpx.Client(timeout=10, cookies={COOKIE: "made-up-session-id"}) as client:
        response = client.get(f"{server.url}/api/v1/devices")
    assert response.status_code == 401


def test_the_authorization_header_wins_over_the_cookie(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        login(client, server.url, "admin")
        me = client.get(f"{server.url}/api/v1/session", headers=bearer("viewer")).json()
        assert (me["role"], me["via"]) == ("viewer", "bearer")
        bad = client.get(f"{server.url}/api/v1/session", headers={"Authorization": "Bearer nonsense"})
        assert bad.status_code == 401  # a wrong header is not rescued by the cookie


def test_a_cross_site_post_with_the_cookie_is_refused(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        login(client, server.url, "viewer")
        evil = client.delete(f"{server.url}/api/v1/session", headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        same = client.delete(f"{server.url}/api/v1/session", headers={"Origin": server.url})
        assert same.status_code == 204


def test_a_token_in_the_query_string_is_never_accepted(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        for path in ("/api/v1/devices", "/api/v1/events", "/api/v1/health", "/metrics"):
            for param in ("token", "access_token", "api_key", "ACCESS_TOKEN"):
                response = client.get(f"{server.url}{path}", params={param: TOKENS["admin"]})
                assert response.status_code == 401, (path, param)
                assert "Authorization header" in response.json()["detail"]
            # The same request with the token in the header is fine: the refusal is about the URL.
            with client.stream("GET", f"{server.url}{path}", headers=bearer("admin")) as response:
                assert response.status_code == 200, path


def test_repeated_failures_are_throttled(server: ThreadServer) -> None:
    server.app.state.auth_throttle = FailureThrottle(limit=3, window_s=60)
    with httpx.Client(timeout=10) as client:
        codes = [
            client.post(f"{server.url}/api/v1/session", json={"token": f"guess-{i}"}).status_code
            for i in range(3)
        ]
        assert codes == [401, 401, 401]
        blocked = client.post(f"{server.url}/api/v1/session", json={"token": TOKENS["admin"]})
        assert blocked.status_code == 429
        assert int(blocked.headers["retry-after"]) >= 1
        guessing = client.get(f"{server.url}/api/v1/devices", headers={"Authorization": "Bearer guess"})
        assert guessing.status_code == 429


def test_sessions_expire() -> None:
    now = [1000.0]
    store = SessionStore(lifetime_s=60, now=lambda: now[0])
    book = TokenBook(TOKEN_LIST)
    who = book.identify(TOKENS["viewer"])
    assert who is not None
    sid, _ = store.create(who)
    assert store.get(sid) is not None
    now[0] += 59
    assert store.get(sid) is not None
    now[0] += 2
    assert store.get(sid) is None
    assert store.active() == 0


def test_a_session_ends_when_its_token_is_no_longer_configured(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        login(client, server.url, "operator")
        assert client.get(f"{server.url}/api/v1/session").status_code == 200
        # As after a reload that removed the operator's token.
        remaining = [t for t in TOKEN_LIST if t.role != "operator"]
        server.app.state.services.tokens = TokenBook(remaining)
        assert client.get(f"{server.url}/api/v1/session").status_code == 401

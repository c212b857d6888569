"""Secrets stay secret: API tokens exist only as argon2 hashes in config.yaml and nowhere else (not in
the state database, the audit log, the telemetry files, the logs or /metrics); the service's own
secrets (MQTT password, InfluxDB token, the state database's password, webhook keys, SMTP password)
appear in no log line, at the default level or at DEBUG, and not in /metrics.

Request size limits (413 over 1 MiB) are tested in tests/api/test_limits.py.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from psycopg.conninfo import make_conninfo

from lightctl.config.loader import ConfigError, load
from tests.procs import Api, DistrictCopy, LightctlProcess, wait_until
from tests.security.conftest import ONE_ROAD, ApiTokens, SecuredBroker, serve_config, sim_config
from tests.servers import VictoriaMetrics, free_port
from tests.store.conftest import PgSchema

DEFAULT_LEVELS = ("WARNING", "ERROR", "CRITICAL")
_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) ")


def leaks(log: str, named_secrets: dict[str, str], levels: Iterable[str] | None = None) -> list[str]:
    """Log lines (with their record's level; traceback lines belong to the record above them) that
    contain a secret, as `<secret name>: <line>`; only records of `levels` if given."""
    wanted = None if levels is None else set(levels)
    found: list[str] = []
    level = "WARNING"  # lines before the first record (print output) show at the default level
    for line in log.splitlines():
        match = _LINE.match(line)
        if match:
            level = match["level"]
        if wanted is not None and level not in wanted:
            continue
        found += [f"{name}: {line[:300]}" for name, value in named_secrets.items() if value in line]
    return found


def files_containing(root: Path, named_secrets: dict[str, str]) -> list[str]:
    out: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        data = path.read_bytes()
        out += [f"{name} in {path}" for name, value in named_secrets.items() if value.encode() in data]
    return out


def later(minutes: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=minutes)).isoformat()


# --- API tokens ------------------------------------------------------------------------------------------


def test_api_tokens_are_kept_only_as_hashes(
    district: DistrictCopy, secured_broker: SecuredBroker, api_tokens: ApiTokens, tmp_path: Path
) -> None:
    config = serve_config(district, secured_broker, api_tokens, partition=ONE_ROAD)
    tokens = {f"{role} token": t for role, t in api_tokens.plain.items()}
    cookies: dict[str, str] = {}
    with LightctlProcess.serve(config, tmp_path / "serve.log", log_level="DEBUG") as serve:
        serve.wait_serving()
        base = serve.base_url()
        with (
            Api(base, api_tokens.of("viewer")) as viewer,
            Api(base, api_tokens.of("operator")) as operator,
            Api(base, api_tokens.of("maintenance")) as crew,
            Api(base, api_tokens.of("office")) as office,
            Api(base, api_tokens.of("admin")) as admin,
            Api(base) as anonymous,
        ):
            assert viewer.devices()  # a read with a Bearer token
            override = {
                "targets": ["ha-001"],
                "on": True,
                "level": 40,
                "until": later(30),
                "reason": "secrets test",
            }
            assert viewer.post("/api/v1/overrides", override).status_code == 403  # a refusal is audited too
            assert operator.post("/api/v1/overrides", override).status_code == 201
            window = {"targets": ["ha-002"], "until": later(30), "reason": "secrets test"}
            assert crew.post("/api/v1/maintenance", window).status_code == 201
            assert office.post("/api/v1/reload", {}).status_code == 200
            # The console's login: the token travels in the body once, then only a session id.
            login = anonymous.post("/api/v1/session", {"token": api_tokens.of("admin")})
            assert login.status_code == 200
            cookies["session id"] = login.cookies["lightctl_session"]
            assert anonymous.client.get("/api/v1/session").json()["role"] == "admin"
            # Ways a token can go astray: in the query string, a wrong one, a near miss in a login.
            sneaky = anonymous.client.get("/api/v1/devices", params={"token": api_tokens.of("office")})
            assert sneaky.status_code == 401
            near_miss = api_tokens.of("operator")[:-1]
            tokens["a near-miss token"] = near_miss
            assert anonymous.post("/api/v1/session", {"token": near_miss}).status_code == 401
            with Api(base, near_miss) as wrong:
                assert wrong.client.get("/api/v1/devices").status_code == 401
            assert anonymous.client.delete("/api/v1/session").status_code == 204
            audit = admin.get("/api/v1/audit", limit=1000)
            metrics = admin.metrics_text()
        # The audit log holds the actions (so the search below has something to search)...
        actions = " ".join(json.dumps(item, ensure_ascii=False) for item in audit["items"])
        assert audit["total"] >= 6, audit
        assert "/api/v1/overrides" in actions
        assert "/api/v1/session" in actions
    var = config.parent / "var-serve"
    with sqlite3.connect(var / "state.db") as db:
        assert db.execute("SELECT count(*) FROM audit").fetchone()[0] >= 6
    secret_values = tokens | cookies
    # ...and none of them, nor any file of the service, the log or /metrics, holds a token.
    assert not [name for name, value in secret_values.items() if value in actions]
    assert not files_containing(var, secret_values)
    assert not [name for name, value in secret_values.items() if value in metrics]
    log = serve.log()
    assert not leaks(log, secret_values, DEFAULT_LEVELS)
    assert not leaks(log, secret_values)
    # config.yaml carries the argon2 hashes and nothing from which a token could be read back.
    written = yaml.safe_load(config.read_text(encoding="utf-8"))["tokens"]
    assert all(t["hash"].startswith("$argon2id$") for t in written)
    assert not [name for name, value in tokens.items() if value in config.read_text(encoding="utf-8")]


def test_config_refuses_tokens_in_clear_or_hashed_without_argon2(district: DistrictCopy) -> None:
    for entry, complaint in (
        ({"name": "crew", "role": "maintenance", "token": "plain-text-token"}, "token"),
        ({"name": "crew", "role": "maintenance", "hash": "5e884898da28047151d0e56f8dc62927"}, "hash"),
    ):
        path = district.write_config("tokens.yaml", tokens=[entry])
        with pytest.raises(ConfigError) as refused:
            load(path)
        errors = "\n".join(refused.value.errors)
        assert "tokens" in errors, errors
        assert complaint in errors, errors
        assert "plain-text-token" not in errors  # the refusal does not repeat the secret


# --- the service's own secrets ---------------------------------------------------------------------------


class WebhookReceiver:
    """A robot webhook endpoint on loopback that accepts everything and remembers the paths."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                received.append(self.path)
                body = b'{"errcode": 0, "errmsg": "ok"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


def test_service_secrets_stay_out_of_logs_and_metrics(
    district: DistrictCopy,
    secured_broker: SecuredBroker,
    api_tokens: ApiTokens,
    pg_schema: PgSchema,
    victoria_metrics: VictoriaMetrics,
    webhook: WebhookReceiver,
    tmp_path: Path,
) -> None:
    pg_password = f"pg-{secrets.token_hex(8)}"  # trust authentication here: sent, and ignored
    influx_token = f"influx-{secrets.token_hex(12)}"
    robot_key = f"robot-{secrets.token_hex(10)}"
    robot_secret = f"SEC{secrets.token_hex(16)}"
    smtp_password = f"smtp-{secrets.token_hex(8)}"
    named = {
        "MQTT password": secured_broker.users["lightctl"],
        "PostgreSQL password": pg_password,
        "InfluxDB token": influx_token,
        "webhook access_token": robot_key,
        "DingTalk signing secret": robot_secret,
        "SMTP password": smtp_password,
    } | {f"{role} token": t for role, t in api_tokens.plain.items()}
    config = serve_config(
        district,
        secured_broker,
        api_tokens,
        partition=ONE_ROAD,
        storage={
            "state": {"backend": "postgresql", "dsn": make_conninfo(pg_schema.dsn, password=pg_password)},
            "telemetry": {
                "backend": "influxdb",
                "influxdb": {
                    "url": victoria_metrics.url,
                    "api": "v2",
                    "org": "district",
                    "bucket": "lightctl",
                    "token": influx_token,
                },
                "buffer_path": "var-serve/buffer",
                "flush_s": 0.5,
            },
        },
        alerts={
            "mqtt": True,
            "webhooks": [
                {
                    "url": f"http://127.0.0.1:{webhook.port}/robot/send?access_token={robot_key}",
                    "format": "dingtalk",
                    "secret": robot_secret,
                    "retries": 0,
                }
            ],
            # Nothing listens there: the failure path is logged, and must not carry the password.
            "smtp": {
                "host": "127.0.0.1",
                "port": free_port(),
                "sender": "lightctl@example.org",
                "to": ["crew@example.org"],
                "username": "lightctl",
                "password": smtp_password,
            },
        },
    )
    sim = LightctlProcess.sim(
        sim_config(district, secured_broker), tmp_path / "sim.log", faults="tilt:ha-003"
    )
    with LightctlProcess.serve(config, tmp_path / "serve.log", log_level="DEBUG") as serve, sim:
        serve.wait_serving()
        with Api(serve.base_url(), api_tokens.of("admin")) as admin:
            wait_until(lambda: admin.alarms(type="pole_tilt", device="ha-003"), 60, "the pole_tilt alarm")
            wait_until(lambda: webhook.requests, 30, "the alarm at the robot webhook")
            rows = victoria_metrics.export('{__name__=~"lighting_.*"}', min_samples=1, timeout=30)
            assert rows, "no telemetry reached InfluxDB (victoria-metrics)"
            metrics = admin.metrics_text()
    # The secrets were in use: the webhook was signed with its secret and called with its key.
    assert f"access_token={robot_key}" in webhook.requests[0]
    assert "sign=" in webhook.requests[0]
    assert not [name for name, value in named.items() if value in metrics]
    log = serve.log() + sim.log()
    assert not leaks(log, named, DEFAULT_LEVELS)
    # lightctl has no log-level switch, but anyone running it with INFO or DEBUG logging (as here)
    # must not find a webhook key in the log either.
    assert not leaks(log, named), "secrets in DEBUG / INFO records"


def test_an_unreachable_state_database_is_named_without_its_password_and_no_traceback(
    district: DistrictCopy, secured_broker: SecuredBroker, api_tokens: ApiTokens, tmp_path: Path
) -> None:
    password = f"pg-{secrets.token_hex(8)}"
    closed = free_port()
    dsn = f"postgresql://lightctl:{password}@127.0.0.1:{closed}/lightctl"
    config = serve_config(
        district,
        secured_broker,
        api_tokens,
        partition=ONE_ROAD,
        storage={"state": {"backend": "postgresql", "dsn": dsn}},
    )
    serve = LightctlProcess.serve(config, tmp_path / "serve.log", log_level="DEBUG").start()
    try:
        wait_until(lambda: not serve.running, 60, "serve to give up on a state database that is not there")
    finally:
        serve.stop()
    log = serve.log()
    assert serve.returncode not in (0, None), log
    assert f"127.0.0.1:{closed}" in log or f'"127.0.0.1", port {closed}' in log, log  # where it tried
    assert password not in log, log
    # Last, so that the checks above are made whatever this finds: bad configuration gets a clear
    # error (the house rule), as a refused MQTT password does, not a Python traceback.
    assert "Traceback" not in log, "a traceback instead of a one-line error:\n" + log[-1500:]


def test_the_api_never_hands_out_configured_secrets(
    district: DistrictCopy, secured_broker: SecuredBroker, api_tokens: ApiTokens, tmp_path: Path
) -> None:
    """No endpoint, not even the admin's, echoes config.yaml's secrets or token hashes."""
    config = serve_config(district, secured_broker, api_tokens, partition=ONE_ROAD)
    hashes = {f"{t['role']} hash": t["hash"] for t in api_tokens.config}
    named = {"MQTT password": secured_broker.users["lightctl"]} | hashes
    with LightctlProcess.serve(config, tmp_path / "serve.log") as serve:
        serve.wait_serving()
        with Api(serve.base_url(), api_tokens.of("admin")) as admin:
            paths = [
                p for p, ops in admin.get("/openapi.json")["paths"].items() if "get" in ops and "{" not in p
            ]
            bodies = {}
            for path in paths:
                if path.endswith("/events"):
                    continue  # a stream; its events carry device state
                response = admin.client.get(path)
                bodies[path] = response.text
            bodies["/api/v1/devices/ha-001"] = admin.client.get("/api/v1/devices/ha-001").text
    assert len(bodies) >= 10
    found = [f"{name} in {path}" for path, text in bodies.items() for name, v in named.items() if v in text]
    assert not found
    assert not [p for p, text in bodies.items() if "$argon2" in text]

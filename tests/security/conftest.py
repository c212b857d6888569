"""A Mosquitto that wants passwords on both listeners and TLS on one, API tokens known only to the
test (config.yaml holds their argon2 hashes), and a temp copy of the district to run serve and sim on."""

from __future__ import annotations

import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from argon2 import PasswordHasher

from lightctl.config.settings import ROLES
from tests import servers
from tests.procs import DistrictCopy
from tests.servers import free_port
from tests.store.conftest import pg_schema, postgresql  # noqa: F401 - fixtures used here too

# Verification reads the cost parameters from the hash: cheap ones keep the tests from spending
# tens of milliseconds per request while still storing nothing but an argon2 hash.
_cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@dataclass(frozen=True)
class SecuredBroker:
    host: str
    plain_port: int  # password required, no TLS: the field devices (sim) use it
    tls_port: int  # password and TLS: lightctl uses it
    ca: Path  # signed the broker's certificate
    other_ca: Path  # a CA that did not
    users: dict[str, str]  # user name -> password
    server: servers.Mosquitto


def _openssl(*args: str) -> None:
    openssl = servers.require("openssl", "OpenSSL")
    subprocess.run([openssl, *args], check=True, capture_output=True, timeout=30)


def make_pki(d: Path) -> None:
    """ca.crt, server.crt / server.key for 127.0.0.1 signed by it, and an unrelated other-ca.crt."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1"]
    for name, subject in (("ca", "/CN=lightctl test CA"), ("other-ca", "/CN=some other CA")):
        _openssl(
            "req",
            "-x509",
            *ec,
            "-subj",
            subject,
            "-keyout",
            str(d / f"{name}.key"),
            "-out",
            str(d / f"{name}.crt"),
        )
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1",
             "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))  # fmt: skip
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"), "-CAkey", str(d / "ca.key"),
             "-CAcreateserial", "-days", "1", "-extfile", str(d / "server.ext"), "-out", str(d / "server.crt"))  # fmt: skip


@pytest.fixture
def secured_broker() -> Iterator[SecuredBroker]:
    passwd = servers.require("mosquitto_passwd", "Mosquitto")
    conf = (
        "per_listener_settings false\n"
        "allow_anonymous false\n"
        "password_file {dir}/passwd\n"
        "listener {port} 127.0.0.1\n"
        "listener {tls} 127.0.0.1\n"
        "cafile {dir}/ca.crt\ncertfile {dir}/server.crt\nkeyfile {dir}/server.key\n"
    )
    server = servers.Mosquitto(conf_text=conf)
    users = {"lightctl": f"mq-{secrets.token_hex(8)}", "field": f"fd-{secrets.token_hex(8)}"}
    try:
        make_pki(server.dir)
        first = True
        for user, password in users.items():
            flags = ["-b", "-c"] if first else ["-b"]
            subprocess.run(
                [passwd, *flags, str(server.dir / "passwd"), user, password], check=True, timeout=10
            )
            first = False
    except BaseException:
        server.close()
        raise
    with server:
        yield SecuredBroker(
            server.host,
            server.ports["port"],
            server.ports["tls"],
            server.dir / "ca.crt",
            server.dir / "other-ca.crt",
            users,
            server,
        )


@dataclass(frozen=True)
class ApiTokens:
    plain: dict[str, str]  # role -> token (known only to the test)
    config: list[dict[str, str]]  # what config.yaml's `tokens:` holds

    def of(self, role: str) -> str:
        return self.plain[role]


@pytest.fixture
def api_tokens() -> ApiTokens:
    plain: dict[str, str] = {role: f"tok-{role}-{secrets.token_urlsafe(18)}" for role in ROLES}
    config = [{"name": f"{role}-user", "role": role, "hash": _cheap.hash(t)} for role, t in plain.items()]
    return ApiTokens(plain, config)


@pytest.fixture
def district(tmp_path: Path) -> DistrictCopy:
    """The repository's district with lamps reporting every 10 s (the concentrator batching every 10 s)."""
    return DistrictCopy.of_repo(tmp_path / "district", report_s=10, batch_s=10)


ONE_ROAD = {"roads": ["hengan-lu"]}  # a small instance (33 lamps, no Modbus): enough for MQTT and API


def serve_config(
    district: DistrictCopy,
    broker: SecuredBroker,
    tokens: ApiTokens,
    name: str = "serve.yaml",
    *,
    password: str | None = None,
    ca: Path | None = None,
    partition: dict[str, Any] | None = None,
    **sections: Any,
) -> Path:
    """A config for `lightctl serve`: the TLS listener with lightctl's password and the test CA,
    a free API port, the test's token hashes, SQLite storage in var-<name>/; `sections` merge over it."""
    var = f"var-{name.split('.')[0]}"
    base: dict[str, Any] = {
        "mqtt": {
            "host": broker.host,
            "port": broker.tls_port,
            "client_id": f"lightctl-{name.split('.')[0]}",
            "username": "lightctl",
            "password": broker.users["lightctl"] if password is None else password,
            "tls": {"ca": str(ca or broker.ca)},
        },
        "api": {"port": free_port()},
        "modbus": {"poll_interval_s": 5},
        "tokens": tokens.config,
        "storage": {
            "state": {"backend": "sqlite", "path": f"{var}/state.db"},
            "telemetry": {"backend": "sqlite", "path": f"{var}/telemetry.db", "buffer_path": f"{var}/buffer"},
        },
    }
    if partition is not None:
        base["partition"] = partition
    for key, value in sections.items():
        base[key] = value if not isinstance(value, dict) else {**base.get(key, {}), **value}
    return district.write_config(name, **base)


def sim_config(district: DistrictCopy, broker: SecuredBroker) -> Path:
    """The field devices' config: the plain listener with their own user."""
    return district.write_config(
        "sim.yaml",
        mqtt={
            "host": broker.host,
            "port": broker.plain_port,
            "username": "field",
            "password": broker.users["field"],
        },
    )

"""Real servers for tests, each on free loopback ports in its own temp dir.

Every server can be stopped and started again on the same ports (tests restart brokers mid-run) and
is a context manager that deletes its temp dir on exit. Constructing one whose binary is missing
skips the test loudly (fails it under CI=true), see `require`.
"""

from __future__ import annotations

import asyncio
import atexit
import ipaddress
import json
import os
import shutil
import signal
import socket
import string
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, NoReturn, Self, TypeVar

import httpx
import pytest

from lightctl import embedded_broker

T = TypeVar("T")

HOST = "127.0.0.1"
READY_TIMEOUT = 15.0
SKIP_MARKER = "SERVER MISSING"

# Which Debian package provides a binary, for the message telling a developer what to install.
PACKAGES = {
    "mosquitto": "mosquitto",
    "mosquitto_pub": "mosquitto-clients",
    "mosquitto_sub": "mosquitto-clients",
    "victoria-metrics": "victoria-metrics",
    "influxd": "influxdb",
    "chromium": "chromium",
    "mbpoll": "mbpoll",
}

# Skip message -> ids of the tests it skipped; conftest repeats them in the session summary.
MISSING: dict[str, set[str]] = {}

_live: weakref.WeakSet[_ServerProcess] = weakref.WeakSet()


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    kind: Literal["mosquitto", "amqtt"]


class ServerError(RuntimeError):
    pass


def find_binary(name: str) -> str | None:
    # Mosquitto lives in /usr/sbin, which a non-root PATH often lacks.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin:/usr/local/sbin")


def require(binary_name: str, what: str) -> str:
    """Path of `binary_name`; if missing, fail under CI=true, else skip loudly and remember why."""
    path = find_binary(binary_name)
    if path:
        return path
    package = PACKAGES.get(binary_name, binary_name)
    message = (
        f"{what} is not installed (`{binary_name}` not found): run `sudo scripts/install-system-deps.sh`"
        f" or `sudo apt-get install {package}`"
    )
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true and {message}", pytrace=False)
    test_id = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" ", 1)[0]
    MISSING.setdefault(message, set()).add(test_id)
    pytest.skip(f"!!! {SKIP_MARKER} !!! {message}")


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def mqtt_ping(host: str, port: int, timeout: float = 2.0) -> bool:
    """True if an MQTT 3.1.1 broker accepts an anonymous CONNECT at host:port."""
    # CONNECT: protocol "MQTT" level 4, clean session, keepalive 60, empty client id.
    connect = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(connect)
            connack = sock.recv(4)
            sock.sendall(b"\xe0\x00")
    except OSError:
        return False
    return connack == b"\x20\x02\x00\x00"


def _http_status(url: str) -> int | None:
    try:
        # trust_env=False: a developer's HTTP(S)_PROXY must not capture loopback test traffic.
        return httpx.get(url, timeout=1.0, trust_env=False).status_code
    except httpx.HTTPError:
        return None


class _ServerProcess:
    name = "server"

    def __init__(self) -> None:
        self.host = HOST
        self.dir = Path(tempfile.mkdtemp(prefix=f"lightctl-{self.name}-"))
        self.log_path = self.dir / "server.log"
        self._proc: subprocess.Popen[bytes] | None = None
        _live.add(self)

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        if self.running:
            return self
        command = self._command()
        with self.log_path.open("ab") as log:
            log.write(f"--- {time.strftime('%H:%M:%S')} starting: {' '.join(command)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=self._env(),
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while not self._ready():
            status = self._proc.poll()
            if status is not None:
                self._fail(f"exited with status {status} while starting")
            if time.monotonic() > deadline:
                self._fail(f"was not ready within {READY_TIMEOUT:.0f} s")
            time.sleep(0.05)
        return self

    def _fail(self, why: str) -> NoReturn:
        self.kill()
        raise ServerError(f"{self.name} {why}; last lines of {self.log_path}:\n{self.log_tail()}")

    def _signal(self, sig: signal.Signals, timeout: float) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def stop(self, timeout: float = 10.0) -> None:
        """Graceful stop (SIGTERM), SIGKILL after `timeout`; `start()` reuses the same ports."""
        self._signal(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """Crash the server (SIGKILL), as a power cut would."""
        self._signal(signal.SIGKILL, 5.0)

    def close(self) -> None:
        # The data is thrown away with the temp dir, so a graceful shutdown would only cost time.
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


@atexit.register
def _kill_leftovers() -> None:
    for server in list(_live):
        server.kill()


def _check_loopback_listeners(conf: str) -> None:
    for line in conf.splitlines():
        words = line.split()
        if not words or words[0] != "listener":
            continue
        address = words[2] if len(words) > 2 else ""
        local = address.startswith("/") or address == "localhost"
        if not local:
            try:
                local = ipaddress.ip_address(address).is_loopback
            except ValueError:
                local = False
        if not local:
            raise ValueError(f"Mosquitto listener must bind a loopback address: {line.strip()!r}")


class Mosquitto(_ServerProcess):
    """A private Mosquitto.

    `extra_conf` is appended to a default anonymous listener on `{port}`; `conf_text` replaces the
    listeners and auth entirely. In both, `{dir}` is the server's temp dir and every other `{name}`
    becomes a free loopback port, readable afterwards as `ports[name]` (`port` is `ports["port"]`, or
    the first placeholder). Literal braces are written `{{` `}}`.
    """

    name = "mosquitto"
    kind = "mosquitto"

    def __init__(self, extra_conf: str = "", *, conf_text: str | None = None) -> None:
        self.binary = require("mosquitto", "Mosquitto (MQTT broker)")
        if conf_text is None:
            anonymous = "" if "password_file" in extra_conf else "allow_anonymous true\n"
            conf_text = f"listener {{port}} {HOST}\n{anonymous}{extra_conf}\n"
        fields = [f for _, f, _, _ in string.Formatter().parse(conf_text) if f]
        self.ports = {f: free_port() for f in dict.fromkeys(fields) if f != "dir"}
        if not self.ports:
            raise ValueError("Mosquitto config needs at least one {port} placeholder")
        self.port = self.ports.get("port", next(iter(self.ports.values())))
        super().__init__()
        body = conf_text.format(dir=self.dir, **self.ports)
        try:
            _check_loopback_listeners(body)
        except ValueError:
            shutil.rmtree(self.dir, ignore_errors=True)
            raise
        header = "log_dest stdout\nlog_timestamp_format %H:%M:%S\n"
        if os.geteuid() == 0 and not any(line.split()[:1] == ["user"] for line in body.splitlines()):
            # As root Mosquitto drops to user `mosquitto`, which cannot read the 0700 temp dirs
            # holding this config's password files, certificates and persistence.
            header += "user root\n"
        self.conf_path = self.dir / "mosquitto.conf"
        self.conf_path.write_text(header + body)

    def _command(self) -> list[str]:
        return [self.binary, "-c", str(self.conf_path)]

    def _ready(self) -> bool:
        return all(port_open(self.host, port) for port in self.ports.values())


class VictoriaMetrics(_ServerProcess):
    name = "victoria-metrics"

    def __init__(self, *extra_args: str) -> None:
        self.binary = require("victoria-metrics", "VictoriaMetrics")
        super().__init__()
        self.port = free_port()
        self.url = f"http://{self.host}:{self.port}"
        self.extra_args = extra_args

    def _command(self) -> list[str]:
        return [
            self.binary,
            f"-httpListenAddr={self.host}:{self.port}",
            f"-storageDataPath={self.dir / 'data'}",
            # The default retention (1 month) silently drops samples with older timestamps.
            "-retentionPeriod=100y",
            *self.extra_args,
        ]

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/health") == 200

    def flush(self) -> None:
        httpx.get(f"{self.url}/internal/force_flush", timeout=5.0, trust_env=False).raise_for_status()

    def export(self, selector: str, min_samples: int = 1, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Rows of /api/v1/export for `selector`, once they hold `min_samples` (or `timeout` passes).

        A new series becomes searchable about a second after its first write, force_flush or not.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.flush()
            response = httpx.get(
                f"{self.url}/api/v1/export", params={"match[]": selector}, timeout=10.0, trust_env=False
            )
            response.raise_for_status()
            rows = [json.loads(line) for line in response.text.splitlines()]
            if sum(len(row["values"]) for row in rows) >= min_samples or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)


_INFLUXDB_CONF = """\
# Debian's 1.6.7 knows only `reporting-enabled`; upstream 1.x only `reporting-disabled`.
reporting-enabled = false
reporting-disabled = true
bind-address = "{host}:{rpc_port}"

[meta]
  dir = "{dir}/meta"

[data]
  dir = "{dir}/data"
  wal-dir = "{dir}/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[http]
  enabled = true
  bind-address = "{host}:{port}"
  auth-enabled = false

[ifql]
  enabled = false
  bind-address = "{host}:{ifql_port}"

[logging]
  suppress-logo = true
"""


class InfluxDB(_ServerProcess):
    """InfluxDB 1.x (v1 `/write`, InfluxQL `/query`; no `/api/v2`)."""

    name = "influxdb"

    def __init__(self) -> None:
        self.binary = require("influxd", "InfluxDB 1.x")
        super().__init__()
        self.port = free_port()
        self.rpc_port = free_port()
        self.url = f"http://{self.host}:{self.port}"
        self.conf_path = self.dir / "influxdb.conf"
        self.conf_path.write_text(
            _INFLUXDB_CONF.format(
                host=self.host, port=self.port, rpc_port=self.rpc_port, ifql_port=free_port(), dir=self.dir
            )
        )

    def _command(self) -> list[str]:
        return [self.binary, "run", "-config", str(self.conf_path)]

    def _env(self) -> dict[str, str]:
        # INFLUXDB_* variables override the config file, listeners included.
        return {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}

    def _ready(self) -> bool:
        return _http_status(f"{self.url}/ping") == 204

    def query(self, q: str, db: str | None = None) -> dict[str, Any]:
        """Run InfluxQL via POST /query (POST also allows CREATE/DROP); raise on any error."""
        params = {"q": q} | ({"db": db} if db else {})
        response = httpx.post(f"{self.url}/query", params=params, timeout=10.0, trust_env=False)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        errors = [r["error"] for r in body.get("results", []) if "error" in r]
        if "error" in body or errors:
            raise ServerError(f"InfluxQL {q!r} failed: {body.get('error') or errors}")
        return body

    def create_database(self, name: str) -> None:
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        self.query(f'CREATE DATABASE "{quoted}"')


class EmbeddedBroker:
    """lightctl's amqtt broker on a background thread with its own event loop, for sync tests."""

    kind = "amqtt"

    def __init__(self, host: str = HOST, port: int = 0) -> None:
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker: embedded_broker.EmbeddedBroker | None = None

    @property
    def running(self) -> bool:
        return self._broker is not None

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._loop is None:
            self._loop = asyncio.new_event_loop()
            self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
            self._thread.start()
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(READY_TIMEOUT)

    def start(self) -> Self:
        if self._broker is None:
            # After the first start `port` is the bound one, so a restart reuses it.
            self._broker = self._run(embedded_broker.start_embedded_broker(self.host, self.port))
            self.port = self._broker.port
        return self

    def stop(self) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            self._run(broker.stop())

    def close(self) -> None:
        self.stop()
        loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and thread is not None:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5.0)
            loop.close()

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

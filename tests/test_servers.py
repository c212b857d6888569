"""The test servers themselves work: round trips, restarts on the same port, TLS, auth, wills."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests import servers

TIMEOUT = 5.0


class Client:
    """A paho client on its own network thread that collects what it receives."""

    def __init__(self, host: str, port: int, client_id: str = "", **connect: Any) -> None:
        self.messages: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
        self.connected = threading.Event()
        self.reason: Any = None
        self.paho = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
        # Short reconnect waits: a client whose broker stopped otherwise takes a second to close.
        self.paho.reconnect_delay_set(0.1, 0.5)  # type: ignore[arg-type]
        self.paho.on_connect = self._on_connect
        self.paho.on_message = lambda _c, _u, msg: self.messages.put(msg)
        self.host, self.port, self.connect_kwargs = host, port, connect

    def _on_connect(self, _c: Any, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self.reason = reason
        self.connected.set()

    def start(self) -> Client:
        self.paho.connect(self.host, self.port, **self.connect_kwargs)
        self.paho.loop_start()
        assert self.connected.wait(TIMEOUT), "no CONNACK"
        return self

    def subscribe(self, topic: str, qos: int = 1) -> None:
        subscribed = threading.Event()
        self.paho.on_subscribe = lambda *_: subscribed.set()
        self.paho.subscribe(topic, qos)
        assert subscribed.wait(TIMEOUT), "no SUBACK"

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False) -> None:
        self.paho.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(TIMEOUT)

    def receive(self) -> mqtt.MQTTMessage:
        return self.messages.get(timeout=TIMEOUT)

    def close(self) -> None:
        self.paho.disconnect()
        self.paho.loop_stop()

    def __enter__(self) -> Client:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()


def round_trip(host: str, port: int, topic: str = "lights/test") -> None:
    with Client(host, port) as sub, Client(host, port) as pub:
        sub.subscribe(topic)
        for qos in (0, 1):
            pub.publish(topic, f"qos{qos}".encode(), qos=qos)
            message = sub.receive()
            assert (message.topic, message.payload) == (topic, f"qos{qos}".encode())


def test_shared_mqtt_broker(mqtt_broker: servers.BrokerAddress) -> None:
    assert mqtt_broker.kind in ("mosquitto", "amqtt")
    round_trip(mqtt_broker.host, mqtt_broker.port, topic=f"lightctl-test/{time.time_ns()}")


def test_mosquitto_restarts_on_the_same_port(mosquitto: servers.Mosquitto) -> None:
    port = mosquitto.port
    round_trip(mosquitto.host, port)
    mosquitto.stop()
    assert not servers.port_open(mosquitto.host, port)
    mosquitto.start()
    round_trip(mosquitto.host, port)
    mosquitto.kill()
    assert not mosquitto.running
    mosquitto.start()
    assert mosquitto.port == port
    round_trip(mosquitto.host, port)


def test_mosquitto_conf_text_with_two_listeners() -> None:
    conf = "listener {port} 127.0.0.1\nallow_anonymous true\nlistener {second} 127.0.0.1\n"
    with servers.Mosquitto(conf_text=conf) as broker:
        assert broker.port == broker.ports["port"] != broker.ports["second"]
        sub = subprocess.Popen(
            [servers.require("mosquitto_sub", "Mosquitto clients"), "-h", broker.host,
             "-p", str(broker.ports["second"]), "-t", "a/b", "-C", "1", "-W", "5"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        # mosquitto_sub gives no sign once subscribed; a retained message cannot arrive too early.
        subprocess.run(
            [servers.require("mosquitto_pub", "Mosquitto clients"), "-h", broker.host,
             "-p", str(broker.port), "-t", "a/b", "-m", "灯", "-r", "-q", "1"],
            check=True, timeout=5,
        )  # fmt: skip
        out, _ = sub.communicate(timeout=10)
        assert out.strip() == "灯"


def test_mosquitto_refuses_a_listener_off_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        servers.Mosquitto(conf_text="listener {port} 0.0.0.0\n")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [servers.require("openssl", "OpenSSL"), "req", "-x509", "-newkey", "ec",
         "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def test_mosquitto_tls_listener_and_password(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    passwords = tmp_path / "passwd"
    passwd = servers.require("mosquitto_passwd", "Mosquitto")
    subprocess.run([passwd, "-b", "-c", str(passwords), "lamp", "secret"], check=True, timeout=10)
    extra = f"password_file {passwords}\nlistener {{tls_port}} 127.0.0.1\ncertfile {cert}\nkeyfile {key}\n"
    with servers.Mosquitto(extra) as broker:
        with Client(broker.host, broker.port) as anonymous:
            assert anonymous.reason.is_failure

        tls = Client(broker.host, broker.ports["tls_port"])
        tls.paho.tls_set(ca_certs=str(cert))
        tls.paho.username_pw_set("lamp", "secret")
        with tls:
            assert not tls.reason.is_failure
            tls.subscribe("secure/#")
            tls.publish("secure/x", b"ok")
            assert tls.receive().payload == b"ok"


def test_victoria_metrics_line_protocol(victoria_metrics: servers.VictoriaMetrics) -> None:
    http = httpx.Client(base_url=victoria_metrics.url, timeout=10.0, trust_env=False)
    timestamp_ms = int(time.time() * 1000)
    line = f"lamp,id=L1 level=42 {timestamp_ms * 1_000_000}"
    assert http.post("/api/v2/write", content=line).status_code == 204

    # Line protocol `measurement field=` becomes the series `measurement_field`.
    expected = [
        {"metric": {"__name__": "lamp_level", "id": "L1"}, "values": [42], "timestamps": [timestamp_ms]}
    ]
    assert victoria_metrics.export('{__name__="lamp_level"}') == expected
    victoria_metrics.stop()
    victoria_metrics.start()
    assert victoria_metrics.export('{__name__="lamp_level"}') == expected


def test_influxdb_write_and_influxql(influxdb: servers.InfluxDB) -> None:
    influxdb.create_database("lights")
    http = httpx.Client(base_url=influxdb.url, timeout=10.0, trust_env=False)
    line = "lamp,id=L1 level=42,seq=1i 1700000000"
    response = http.post("/write", params={"db": "lights", "precision": "s"}, content=line)
    assert response.status_code == 204, response.text

    def select() -> list[list[Any]]:
        body = influxdb.query('SELECT "level", "seq" FROM "lamp"', db="lights")
        series = body["results"][0]["series"][0]
        assert series["columns"] == ["time", "level", "seq"]
        values: list[list[Any]] = series["values"]
        return values

    assert select() == [["2023-11-14T22:13:20Z", 42, 1]]
    influxdb.stop()
    influxdb.start()
    assert select() == [["2023-11-14T22:13:20Z", 42, 1]]


def test_embedded_broker_retained_will_and_restart() -> None:
    with servers.EmbeddedBroker() as broker:
        port = broker.port
        publisher = Client(broker.host, port, client_id="lamp-1")
        publisher.paho.will_set("lamps/lamp-1/status", b"offline", qos=1, retain=True)
        with publisher, Client(broker.host, port, client_id="watcher") as watcher:
            publisher.publish("lamps/lamp-1/level", b"80", qos=1, retain=True)
            watcher.subscribe("lamps/#")
            retained = watcher.receive()
            assert (retained.topic, retained.payload, retained.retain) == ("lamps/lamp-1/level", b"80", True)

            # A connection lost without DISCONNECT is what makes the broker send the will.
            sock = publisher.paho.socket()
            assert isinstance(sock, socket.socket)
            sock.shutdown(socket.SHUT_RDWR)
            will = watcher.receive()
            assert (will.topic, will.payload, will.qos) == ("lamps/lamp-1/status", b"offline", 1)

            # With a client still connected, as when a test restarts the broker under a service.
            broker.stop()
            assert not servers.port_open(broker.host, port)
        broker.start()
        assert broker.port == port
        round_trip(broker.host, port)


def test_require_skips_loudly_or_fails_under_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    # Its own registry, so this deliberate skip does not show in the session's missing-server block.
    monkeypatch.setattr(servers, "MISSING", {})
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=r"SERVER MISSING.*apt-get install no-such-server"):
        servers.require("no-such-server", "A server")
    assert len(servers.MISSING) == 1
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true"):
        servers.require("no-such-server", "A server")

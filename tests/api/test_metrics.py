"""/metrics: Prometheus text for loopback clients only, read from the running parts at scrape time."""

from __future__ import annotations

import time

import httpx
from prometheus_client import Histogram
from prometheus_client.parser import text_string_to_metric_families

from lightctl.api.app import create_app
from lightctl.config.loader import District
from lightctl.drivers.sink import Drops
from lightctl.model import Reading
from tests.api.conftest import TOKENS, ThreadServer, make_services


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    parsed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def value(table: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return table[(name, tuple(sorted(labels.items())))]


class AlarmCounts:
    def counts(self) -> dict[tuple[str, str], int]:
        return {("critical", "open"): 2, ("minor", "acked"): 1}


def test_metrics_report_ingest_devices_drops_and_the_optional_parts(district: District) -> None:
    mqtt_drops = Drops()
    mqtt_drops.count("bad_json", 3)
    mqtt_drops.count("unknown_device")
    latency = Histogram("lightctl_test_latency_seconds", "a collector another part owns", registry=None)
    latency.observe(0.2)
    svc = make_services(
        district,
        alarms=AlarmCounts(),
        telemetry_backlog=lambda: 42,
        poll_cycle_seconds=lambda: {"zhg-01": 1.5},
        command_latency_seconds=lambda: {"0.5": 0.2, "0.99": 1.1},
        ingest_counters=lambda: {"mqtt": 1000},
        collectors=[latency],
    )
    svc.drops["mqtt"] = mqtt_drops
    app = create_app(svc)
    with ThreadServer(app) as server:
        server.call(
            svc.live.readings,
            [Reading("ha-001", time.time(), values={"on": 1}), Reading("ha-002", time.time())],
        )
        server.call(svc.live.availability, "ha-003", False, time.time(), "silent")
        with httpx.Client(timeout=10) as client:
            client.post(f"{server.url}/api/v1/session", json={"token": TOKENS["viewer"]})
            response = client.get(f"{server.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    m = samples(response.text)
    assert value(m, "lightctl_readings_total") == 2
    assert value(m, "lightctl_reading_batches_total") == 1
    assert value(m, "lightctl_availability_changes_total", state="offline") == 1
    assert value(m, "lightctl_dropped_payloads_total", driver="mqtt", reason="bad_json") == 3
    assert value(m, "lightctl_dropped_payloads_total", driver="mqtt", reason="unknown_device") == 1
    assert value(m, "lightctl_devices", kind="lamp", status="online") == 2
    assert value(m, "lightctl_devices", kind="lamp", status="offline") == 1
    assert value(m, "lightctl_devices", kind="lamp", status="unknown") == 331 - 3
    assert value(m, "lightctl_devices", kind="group", status="unknown") == 600
    assert value(m, "lightctl_alarms", severity="critical", state="open") == 2
    assert value(m, "lightctl_telemetry_backlog") == 42
    assert value(m, "lightctl_poll_cycle_seconds", gateway="zhg-01") == 1.5
    assert value(m, "lightctl_command_latency_seconds", quantile="0.99") == 1.1
    assert value(m, "lightctl_ingest_messages_total", source="mqtt") == 1000
    assert value(m, "lightctl_test_latency_seconds_count") == 1
    assert value(m, "lightctl_sessions_active") == 1
    assert value(m, "lightctl_info", site="xinjian", version=value_label(m, "lightctl_info", "version")) == 1
    for secret in TOKENS.values():
        assert secret not in response.text
    assert "viewer-user" not in response.text


def value_label(table: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, label: str) -> str:
    return next(dict(labels)[label] for (n, labels) in table if n == name)


def local_client(app: object, host: str = "127.0.0.1") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(host, 5000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://lightctl")


async def test_alarm_counts_come_from_the_lifecycle_when_it_has_no_counts(district: District) -> None:
    from lightctl.model import Alarm, AlarmState, Severity

    class Lifecycle:
        def open_alarms(self) -> list[Alarm]:
            def alarm(severity: Severity, state: AlarmState) -> Alarm:
                return Alarm(1, "lamp_failure", severity, "ha-001", state, 0.0, 0.0)

            return [
                alarm(Severity.MAJOR, AlarmState.OPEN),
                alarm(Severity.MAJOR, AlarmState.OPEN),
                alarm(Severity.CRITICAL, AlarmState.ACKED),
            ]

    async with local_client(create_app(make_services(district, alarms=Lifecycle()))) as client:
        m = samples((await client.get("/metrics")).text)
    assert value(m, "lightctl_alarms", severity="major", state="open") == 2
    assert value(m, "lightctl_alarms", severity="critical", state="acked") == 1


async def test_missing_or_failing_parts_do_not_break_the_scrape(district: District) -> None:
    def broken() -> float:
        raise RuntimeError("storage not ready")

    svc = make_services(district, telemetry_backlog=broken, poll_cycle_seconds=lambda: "not a mapping")
    async with local_client(create_app(svc)) as client:
        first = await client.get("/metrics")
        second = await client.get("/metrics")
    assert first.status_code == second.status_code == 200
    m = samples(second.text)
    assert ("lightctl_telemetry_backlog", ()) not in m
    assert not any(name == "lightctl_alarms" for name, _ in m)  # no alarm manager: no alarm metrics
    assert value(m, "lightctl_metrics_hook_errors_total", hook="telemetry_backlog") == 2
    assert value(m, "lightctl_metrics_hook_errors_total", hook="poll_cycle_seconds") == 2


async def test_only_loopback_clients_get_metrics(district: District) -> None:
    app = create_app(make_services(district))
    cases = {
        "127.0.0.1": 200,
        "::1": 200,
        "::ffff:127.0.0.1": 200,
        "10.0.0.5": 403,
        "192.168.1.20": 403,
        "": 403,
    }
    for host, expected in cases.items():
        async with local_client(app, host) as client:
            assert (await client.get("/metrics")).status_code == expected, host


def test_a_remote_client_behind_a_local_proxy_is_refused(server: ThreadServer) -> None:
    # uvicorn trusts X-Forwarded-For from 127.0.0.1, so a proxy on this host forwarding a remote
    # client does not turn that client into a loopback one.
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{server.url}/metrics").status_code == 200
        proxied = client.get(f"{server.url}/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status_code == 403


async def test_each_app_has_its_own_registry(district: District) -> None:
    first = make_services(district)
    second = make_services(district)
    apps = [create_app(first), create_app(second)]
    first.drops["mqtt"] = Drops()
    first.drops["mqtt"].count("bad_json", 5)
    texts = []
    for app in apps:
        async with local_client(app) as client:
            texts.append((await client.get("/metrics")).text)
    assert 'lightctl_dropped_payloads_total{driver="mqtt",reason="bad_json"} 5.0' in texts[0]
    assert "bad_json" not in texts[1]

"""/metrics in the Prometheus text format, open to loopback clients only.

Everything is read at scrape time from the running parts, through a registry of this app's own (not
prometheus-client's global one, so several apps can live in one process, as in tests). Parts that
land later are optional: each hook below is read only when app.py has put it in svc.extras, and a
hook that fails is skipped and counted rather than breaking the scrape.

  svc.extras["alarms"].counts()          -> Mapping[(severity, state), int]; or, failing that,
  svc.extras["alarms"].open_alarms()     -> Iterable of Alarm (counted by severity and state)
  svc.extras["telemetry_backlog"]()      -> float   readings waiting for storage
  svc.extras["poll_cycle_seconds"]()     -> Mapping[gateway id, float]   last full poll cycle
  svc.extras["command_latency_seconds"]()-> Mapping[quantile label, float]   e.g. {"0.5": .., "0.99": ..}
  svc.extras["ingest_counters"]()        -> Mapping[source, float]   messages received per driver
  svc.extras["collectors"]               -> list of prometheus-client collectors (e.g. a Histogram
                                            created with registry=None), registered as they are
"""

from __future__ import annotations

import ipaddress
import logging
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from lightctl import __version__
from lightctl.api.audit import AuditStats
from lightctl.api.events import EventHub
from lightctl.api.session import SessionStore
from lightctl.model import Reading
from lightctl.services import Services
from lightctl.state import LiveState

log = logging.getLogger(__name__)


class IngestCounter:
    """Counts what reaches LiveState; the listeners add one integer per batch, nothing per reading."""

    def __init__(self, live: LiveState) -> None:
        self.readings = 0
        self.batches = 0
        self.availability: Counter[str] = Counter()
        live.reading_listeners.append(self._on_readings)
        live.availability_listeners.append(self._on_availability)

    def _on_readings(self, batch: list[Reading]) -> None:
        self.readings += len(batch)
        self.batches += 1

    def _on_availability(self, device_id: str, online: bool, ts: float, reason: str) -> None:
        self.availability["online" if online else "offline"] += 1


class LightctlCollector(Collector):
    def __init__(
        self,
        svc: Services,
        ingest: IngestCounter,
        hub: EventHub,
        sessions: SessionStore,
        audit: AuditStats,
    ) -> None:
        self.svc = svc
        self.ingest = ingest
        self.hub = hub
        self.sessions = sessions
        self.audit = audit
        self.hook_errors: Counter[str] = Counter()

    def collect(self) -> Iterable[Metric]:
        svc = self.svc
        info = GaugeMetricFamily("lightctl_info", "lightctl version and site", labels=["version", "site"])
        info.add_metric([__version__, svc.district.settings.site.id], 1)
        yield info

        yield CounterMetricFamily("lightctl_readings", "readings received", value=self.ingest.readings)
        yield CounterMetricFamily("lightctl_reading_batches", "reading batches", value=self.ingest.batches)
        changes = CounterMetricFamily(
            "lightctl_availability_changes", "online / offline reports", labels=["state"]
        )
        for state in ("online", "offline"):
            changes.add_metric([state], self.ingest.availability[state])
        yield changes

        drops = CounterMetricFamily(
            "lightctl_dropped_payloads", "malformed or unwanted input dropped", labels=["driver", "reason"]
        )
        for driver, counted in list(svc.drops.items()):
            for reason, n in list(counted.by_reason.items()):
                drops.add_metric([driver, reason], n)
        yield drops

        yield self._devices()
        yield from self._hooks()

        yield GaugeMetricFamily(
            "lightctl_event_stream_clients", "open /events streams", value=self.hub.clients
        )
        yield CounterMetricFamily(
            "lightctl_event_stream_dropped_events",
            "events dropped for slow clients (each then told to resync)",
            value=self.hub.dropped_frames,
        )
        yield GaugeMetricFamily("lightctl_sessions_active", "console sessions", value=self.sessions.active())
        yield CounterMetricFamily(
            "lightctl_audit_records", "audit records written", value=self.audit.recorded
        )
        yield CounterMetricFamily(
            "lightctl_audit_failures", "audit records the store refused", value=self.audit.failures
        )
        errors = CounterMetricFamily("lightctl_metrics_hook_errors", "failed metric hooks", labels=["hook"])
        for hook, n in self.hook_errors.items():
            errors.add_metric([hook], n)
        yield errors

    def _devices(self) -> Metric:
        family = GaugeMetricFamily(
            "lightctl_devices", "devices by kind and status", labels=["kind", "status"]
        )
        tallies = self.svc.live.tallies  # counted as they change: no walk over every device
        for kind in sorted(tallies):
            for state, online in (("online", True), ("offline", False), ("unknown", None)):
                family.add_metric([kind, state], tallies[kind]["online", online])
        return family

    def _hooks(self) -> Iterable[Metric]:
        extras = self.svc.extras
        alarms: Any = extras.get("alarms")
        counter = getattr(alarms, "counts", None)
        unresolved = getattr(alarms, "open_alarms", None)
        if not callable(counter) and callable(unresolved):
            counter = partial(_count_alarms, unresolved)  # the lifecycle's unresolved alarms
        if callable(counter):
            by = self._call("alarms", counter)
            if by is not None:
                table = GaugeMetricFamily(
                    "lightctl_alarms", "alarms by severity and state", labels=["severity", "state"]
                )
                for (severity, state), n in sorted(by.items()):
                    table.add_metric([str(severity), str(state)], float(n))
                yield table
        backlog = self._call("telemetry_backlog", extras.get("telemetry_backlog"))
        if backlog is not None:
            yield GaugeMetricFamily(
                "lightctl_telemetry_backlog", "readings waiting to be stored", value=float(backlog)
            )
        for hook, name, label, help_text in (
            ("poll_cycle_seconds", "lightctl_poll_cycle_seconds", "gateway", "last full Modbus poll cycle"),
            (
                "command_latency_seconds",
                "lightctl_command_latency_seconds",
                "quantile",
                "command to confirmation",
            ),
            ("ingest_counters", "lightctl_ingest_messages", "source", "messages received per driver"),
        ):
            values = self._call(hook, extras.get(hook))
            if values is None:
                continue
            family: CounterMetricFamily | GaugeMetricFamily
            if hook == "ingest_counters":
                family = CounterMetricFamily(name, help_text, labels=[label])
            else:
                family = GaugeMetricFamily(name, help_text, labels=[label])
            for key, value in sorted(values.items()):
                family.add_metric([str(key)], float(value))
            yield family

    def _call(self, hook: str, fn: Callable[[], Any] | None) -> Any:
        if not callable(fn):
            return None
        try:
            value = fn()
        except Exception:
            self.hook_errors[hook] += 1
            # The traceback once; after that the counter says it keeps failing.
            log.warning("metrics hook %s failed", hook, exc_info=self.hook_errors[hook] == 1)
            return None
        if hook != "telemetry_backlog" and not isinstance(value, Mapping):
            self.hook_errors[hook] += 1
            return None
        return value


def _count_alarms(open_alarms: Callable[[], Iterable[Any]]) -> Mapping[tuple[str, str], int]:
    return Counter((str(a.severity), str(a.state)) for a in open_alarms())


def build_registry(
    svc: Services, hub: EventHub, sessions: SessionStore, audit: AuditStats
) -> CollectorRegistry:
    registry = CollectorRegistry()  # no auto-describe: a hook is called only when scraped
    registry.register(LightctlCollector(svc, IngestCounter(svc.live), hub, sessions, audit))
    for collector in svc.extras.get("collectors", []):
        registry.register(collector)
    return registry


def is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_loopback


router = APIRouter()


@router.get("/metrics", responses={200: {"content": {"text/plain": {}}}})
async def metrics(request: Request) -> Response:
    # async: the scrape reads live dicts that the event loop mutates, so it runs on the loop too
    host = request.client.host if request.client else None
    if not is_loopback(host):
        raise HTTPException(status_code=403, detail="/metrics is served to loopback clients only")
    registry: CollectorRegistry = request.app.state.metrics_registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

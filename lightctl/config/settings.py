"""config.yaml: the site, the broker, the Modbus defaults, storage, the API, tokens and alert channels."""

from __future__ import annotations

from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Slug = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=64)]
Role = Literal["viewer", "maintenance", "operator", "office", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "maintenance", "operator", "office", "admin")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Site(Strict):
    id: Slug
    name: str = ""
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    timezone: str

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown time zone {value!r} (use an IANA name such as Asia/Shanghai)"
            ) from None
        return value


class Tls(Strict):
    ca: str | None = None  # path to the CA certificate that signed the broker's
    cert: str | None = None  # client certificate, for brokers that require one
    key: str | None = None
    insecure: bool = False  # skip host name check (self-signed lab brokers only)

    @model_validator(mode="after")
    def _pair(self) -> Tls:
        if (self.cert is None) != (self.key is None):
            raise ValueError("cert and key go together")
        return self


class Mqtt(Strict):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    version: Literal["3.1.1", "5"] = "5"
    client_id: str = Field("lightctl", min_length=1, max_length=64)
    username: str | None = None
    password: str | None = Field(None, repr=False)
    tls: Tls | None = None
    keepalive_s: int = Field(30, ge=5, le=3600)
    ack_timeout_s: float = Field(5.0, gt=0, le=300)
    telemetry_qos: Literal[0, 1] = 0


class Modbus(Strict):
    poll_interval_s: float = Field(30.0, gt=0, le=3600)
    timeout_s: float = Field(1.0, gt=0, le=60)
    failed_polls_for_comm_loss: int = Field(3, ge=1, le=100)
    # Commands per gateway whose read-back is still pending. 1: one at a time, read back before the
    # next (design.md section 3). More lets writes to other units go out while earlier ones wait for
    # their contactors (up to 200 ms each): what a gateway-wide emergency switch needs.
    commands_in_flight: int = Field(1, ge=1, le=64)


class Control(Strict):
    retry_delays_s: list[float] = Field(default_factory=lambda: [2.0, 4.0, 8.0])
    tick_s: float = Field(1.0, gt=0, le=60)


class StateStore(Strict):
    backend: Literal["sqlite", "postgresql"] = "sqlite"
    path: str = "var/state.db"
    dsn: str | None = Field(None, repr=False)  # postgresql://user@host/db

    @model_validator(mode="after")
    def _dsn(self) -> StateStore:
        if self.backend == "postgresql" and not self.dsn:
            raise ValueError("backend postgresql needs a dsn")
        return self


class Influx(Strict):
    url: str = "http://127.0.0.1:8086"
    api: Literal["v2", "v1"] = "v2"
    bucket: str | None = None  # v2
    org: str | None = None
    token: str | None = Field(None, repr=False)
    database: str | None = None  # v1
    retention_policy: str | None = None
    username: str | None = None
    password: str | None = Field(None, repr=False)
    measurement: str = "lighting"

    @model_validator(mode="after")
    def _target(self) -> Influx:
        if self.api == "v2" and not (self.bucket and self.org):
            raise ValueError("api v2 needs bucket and org")
        if self.api == "v1" and not self.database:
            raise ValueError("api v1 needs database")
        return self


class TelemetryStore(Strict):
    backend: Literal["sqlite", "influxdb"] = "sqlite"
    path: str = "var/telemetry.db"
    raw_retention_days: int = Field(30, ge=1)
    rollup_retention_days: int = Field(3 * 366, ge=1)
    influxdb: Influx | None = None
    buffer_path: str = "var/buffer"
    buffer_max_bytes: int = Field(1 << 30, ge=1 << 20)
    batch_size: int = Field(5000, ge=1)
    flush_s: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _influx(self) -> TelemetryStore:
        if self.backend == "influxdb" and self.influxdb is None:
            raise ValueError("backend influxdb needs an influxdb section")
        return self


class Storage(Strict):
    state: StateStore = StateStore()
    telemetry: TelemetryStore = TelemetryStore()
    audit_retention_days: int = Field(400, ge=180)


class Api(Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    session_hours: float = Field(12.0, gt=0, le=24 * 30)


class Token(Strict):
    name: str = Field(min_length=1, max_length=64)
    role: Role
    hash: str = Field(pattern=r"^\$argon2", repr=False)  # `lightctl token-hash` prints one


class Webhook(Strict):
    url: str = Field(pattern=r"^https?://")
    format: Literal["generic", "wecom", "dingtalk"] = "generic"
    min_severity: Literal["critical", "major", "minor"] = "minor"
    timeout_s: float = Field(5.0, gt=0)
    retries: int = Field(5, ge=0, le=20)
    msgtype: Literal["markdown", "text"] = "markdown"  # wecom / dingtalk message type
    secret: str | None = Field(None, repr=False)  # dingtalk robot signing secret (加签)


class Smtp(Strict):
    host: str
    port: int = 25
    sender: str
    to: list[str]
    username: str | None = None
    password: str | None = Field(None, repr=False)
    starttls: bool = False


Severity = Literal["critical", "major", "minor"]


def _repair_defaults() -> dict[Severity, float]:
    return {"critical": 1.0, "major": 24.0, "minor": 72.0}


class Alerts(Strict):
    mqtt: bool = True
    webhooks: list[Webhook] = Field(default_factory=list)
    smtp: Smtp | None = None
    repair_hours: dict[Severity, float] = Field(default_factory=_repair_defaults)


class Thresholds(Strict):
    """Fault rule parameters; config.yaml may override them per device kind."""

    lamp_failure_ratio: float = 0.25
    lamp_failure_reports: int = 2
    lamp_failure_min_expected_w: float = 4.0
    day_burner_ratio: float = 0.20
    day_burner_s: float = 600.0
    dim_low_ratio: float = 0.75
    dim_high_ratio: float = 1.25
    dim_reports: int = 3
    cycling_transitions: int = 3
    cycling_window_s: float = 1800.0
    voltage_high: float = 242.0
    voltage_low: float = 198.0
    voltage_reports: int = 3
    pf_low: float = 0.85
    pf_min_level: int = 50
    pf_reports: int = 3
    temperature_max: float = 75.0
    leakage_ma: float = 30.0
    supply_lost_v: float = 50.0
    comm_loss_intervals: float = 3.0
    # energy_anomaly (docs/alarms.md): deviation from the median of the device's last
    # `energy_baseline_nights` nights on the same program, judged with at least `energy_min_nights`
    # of them and a baseline of at least `energy_min_kwh`; nights older than `energy_lookback_nights`
    # are forgotten.
    energy_deviation: float = Field(0.20, gt=0)
    energy_baseline_nights: int = Field(7, ge=1)
    energy_min_nights: int = Field(3, ge=1)
    energy_min_kwh: float = Field(0.05, ge=0)
    energy_lookback_nights: int = Field(35, ge=1, le=400)
    # Episode handling (docs/alarms.md): healthy reports that clear a condition, how long a cleared
    # condition must stay clear before its alarm auto-resolves (a re-fire sooner continues the same
    # alarm), and how long after a command readings are not judged against the new desired state.
    clear_reports: int = Field(2, ge=1)
    flap_holdoff_s: float = Field(300.0, ge=0)
    command_grace_s: float = Field(5.0, ge=0)
    relay_polls: int = Field(2, ge=1)  # ZHD-G2 feedback != coil in this many polls
    relay_settle_s: float = Field(1.0, ge=0)  # ...or in the first poll this long after a write
    cycling_max_report_s: float = 300.0  # cycling is judged only for devices reporting this often
    cable_theft_groups: int = Field(3, ge=2)


class Partition(Strict):
    """Which part of the inventory this instance owns (several instances for a city)."""

    roads: list[str] | None = None
    gateways: list[str] | None = None
    concentrators: list[str] | None = None
    zones: list[str] | None = None


class Settings(Strict):
    site: Site
    mqtt: Mqtt = Mqtt()
    modbus: Modbus = Modbus()
    control: Control = Control()
    storage: Storage = Storage()
    api: Api = Api()
    tokens: list[Token] = Field(default_factory=list)
    alerts: Alerts = Alerts()
    thresholds: dict[Literal["lamp", "group", "facade"], Thresholds] = Field(default_factory=dict)
    partition: Partition | None = None
    devices_dir: str = "devices"
    schedules_dir: str = "schedules"

    def thresholds_for(self, kind: str) -> Thresholds:
        return self.thresholds.get(kind, Thresholds())  # type: ignore[call-overload]

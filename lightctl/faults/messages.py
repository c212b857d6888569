"""What an alarm event looks like to the outside: the API's JSON shape, and the texts crews read in
WeCom (企业微信) group robots, DingTalk (钉钉) robots and mail. Pure functions of the event."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import orjson

from lightctl.config.loader import District
from lightctl.faults.catalog import BRIDGE_ID, SEVERITY_ZH, TYPE_NAMES_ZH
from lightctl.faults.lifecycle import AlarmEvent
from lightctl.model import Alarm, Severity

WECOM_MARKDOWN_MAX = 4096  # bytes of markdown.content
WECOM_TEXT_MAX = 2048  # bytes of text.content
DINGTALK_MAX = 5000  # characters; DingTalk truncates long messages

HEADLINE: dict[str, str] = {
    "raised": "告警",
    "resolved": "恢复",
    "escalated": "升级",
    "overdue": "超时未修复",
    "acked": "已确认",
    "assigned": "已指派",
    "updated": "更新",
}


@dataclass(frozen=True, slots=True)
class Context:
    """How to present alarms of one site."""

    site: str
    tz: ZoneInfo
    describe: Callable[[str], str]  # device id -> a name crews know
    overdue: Callable[[Alarm, float], bool]


def names_of(district: District) -> Callable[[str], str]:
    names: dict[str, str] = {d.id: d.name for d in district.devices.values()}
    names.update({g.id: g.name for g in district.gateways.values()})
    names.update({c.id: c.name for c in district.concentrators.values()})
    names.setdefault(BRIDGE_ID, "MQTT 代理连接")
    return lambda ident: names.get(ident, "")


def iso(ts: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def alarm_json(alarm: Alarm, ctx: Context, now: float) -> dict[str, object]:
    """The alarm as the API returns it (design.md section 4), plus detail and held."""
    return {
        "id": alarm.id,
        "type": alarm.type,
        "severity": alarm.severity.value,
        "device": alarm.device,
        "state": alarm.state.value,
        "first_seen": iso(alarm.first_seen, ctx.tz),
        "last_seen": iso(alarm.last_seen, ctx.tz),
        "parent": alarm.parent,
        "assignee": alarm.assignee,
        "note": alarm.note,
        "overdue": ctx.overdue(alarm, now),
        "detail": alarm.detail,
        "held": alarm.held,
    }


def event_id(event: AlarmEvent) -> str:
    """Stable per event, for receivers that deduplicate (sent as X-Lightctl-Event)."""
    return f"{event.alarm.id}-{event.kind}-{round(event.at * 1000)}"


def generic_body(event: AlarmEvent, ctx: Context) -> bytes:
    return orjson.dumps(
        {
            "event": event.kind,
            "event_id": event_id(event),
            "site": ctx.site,
            "at": iso(event.at, ctx.tz),
            "alarm": alarm_json(event.alarm, ctx, event.at),
            "device_name": ctx.describe(event.alarm.device),
            "children": event.children,
        }
    )


def title(event: AlarmEvent, ctx: Context) -> str:
    a = event.alarm
    name = ctx.describe(a.device)
    kind = HEADLINE.get(event.kind, event.kind)
    return f"【{kind}·{SEVERITY_ZH[a.severity]}】{TYPE_NAMES_ZH.get(a.type, a.type)} {name or a.device}"


def lines(event: AlarmEvent, ctx: Context) -> list[tuple[str, str]]:
    a = event.alarm
    rows = [
        ("设备", f"{a.device} {ctx.describe(a.device)}".strip()),
        ("类型", f"{TYPE_NAMES_ZH.get(a.type, a.type)} ({a.type})"),
        ("级别", f"{SEVERITY_ZH[a.severity]} ({a.severity.value})"),
        ("首次", iso(a.first_seen, ctx.tz)),
    ]
    if event.kind == "resolved":
        rows.append(("恢复", iso(event.at, ctx.tz)))
    if a.detail:
        rows.append(("详情", a.detail))
    if event.children:
        rows.append(("关联", f"{event.children} 条子告警"))
    if a.assignee:
        rows.append(("负责人", a.assignee))
    rows.append(("编号", f"#{a.id} ({ctx.site})"))
    return rows


def markdown(event: AlarmEvent, ctx: Context, colour: bool) -> str:
    head = title(event, ctx)
    if colour and event.kind != "resolved":
        tone = "warning" if event.alarm.severity is not Severity.MINOR else "comment"
        head = f'<font color="{tone}">{head}</font>'
    elif colour:
        head = f'<font color="info">{head}</font>'
    body = "\n".join(f"> {k}: {v}" for k, v in lines(event, ctx))
    return f"### {head}\n{body}"


def plain(event: AlarmEvent, ctx: Context) -> str:
    return title(event, ctx) + "\n" + "\n".join(f"{k}: {v}" for k, v in lines(event, ctx))


def _fit(text: str, max_bytes: int) -> str:
    data = text.encode()
    if len(data) <= max_bytes:
        return text
    return data[: max_bytes - 3].decode(errors="ignore") + "…"


def wecom_body(event: AlarmEvent, ctx: Context, msgtype: str) -> bytes:
    """WeCom group robot: {"msgtype": "markdown", "markdown": {"content"}} or text."""
    if msgtype == "text":
        return orjson.dumps({"msgtype": "text", "text": {"content": _fit(plain(event, ctx), WECOM_TEXT_MAX)}})
    content = _fit(markdown(event, ctx, colour=True), WECOM_MARKDOWN_MAX)
    return orjson.dumps({"msgtype": "markdown", "markdown": {"content": content}})


def dingtalk_body(event: AlarmEvent, ctx: Context, msgtype: str) -> bytes:
    """DingTalk robot: {"msgtype": "markdown", "markdown": {"title", "text"}} or text."""
    if msgtype == "text":
        return orjson.dumps({"msgtype": "text", "text": {"content": plain(event, ctx)[:DINGTALK_MAX]}})
    text = markdown(event, ctx, colour=False)[:DINGTALK_MAX]
    return orjson.dumps({"msgtype": "markdown", "markdown": {"title": title(event, ctx), "text": text}})


def mail_subject_and_body(event: AlarmEvent, ctx: Context) -> tuple[str, str]:
    return title(event, ctx), plain(event, ctx)

"""Notification channels against real local receivers: webhooks retried until delivered exactly once,
WeCom and DingTalk robot payloads, the MQTT publish callable, the event stream and mail."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import socketserver
import threading
import urllib.parse
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from zoneinfo import ZoneInfo

import pytest

from lightctl.config.settings import Smtp, Webhook
from lightctl.faults.lifecycle import AlarmEvent, EventKind
from lightctl.faults.messages import Context, alarm_json
from lightctl.faults.notify import EventStream, Notifier, dingtalk_signed
from lightctl.model import Alarm, AlarmState, Severity

from .factory import T0

TZ = ZoneInfo("Asia/Shanghai")
CTX = Context("xinjian", TZ, lambda d: {"zhg-05": "5号箱变 阳明路"}.get(d, ""), lambda a, now: False)


def event(
    kind: EventKind = "raised", severity: Severity = Severity.CRITICAL, notify: bool = True
) -> AlarmEvent:
    alarm = Alarm(
        17, "cable_theft_suspected", severity, "zhg-05", AlarmState.OPEN, T0, T0 + 5,
        detail="30 groups lost supply within one poll cycle",
    )  # fmt: skip
    return AlarmEvent(kind, alarm, notify, T0 + 6, children=30)


class Receiver:
    """A local HTTP endpoint that fails the first `fail` requests with `fail_status`, then answers `answer`."""

    def __init__(
        self, fail: int = 0, fail_status: int = 500, answer: bytes = b"{}", fail_answer: bytes = b""
    ) -> None:
        self.fail = fail
        self.fail_status = fail_status
        self.answer = answer
        self.fail_answer = fail_answer
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.accepted: list[bytes] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.requests.append((self.path, dict(self.headers), body))
                failing = len(receiver.requests) <= receiver.fail
                status = receiver.fail_status if failing else 200
                payload = receiver.fail_answer if failing else receiver.answer
                if not failing:
                    receiver.accepted.append(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook?key=abc"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.asynccontextmanager
async def running(notifier: Notifier) -> AsyncIterator[Notifier]:
    task = asyncio.create_task(notifier.run())
    try:
        yield notifier
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate: object, within: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_webhook_that_fails_twice_gets_the_alarm_exactly_once() -> None:
    with Receiver(fail=2) as rx:
        notifier = Notifier(CTX, webhooks=[Webhook(url=rx.url)], backoff_s=0.05)
        async with running(notifier):
            notifier.alarm_event(event())
            await until(lambda: notifier.stats["webhook0:delivered"] == 1)
            await asyncio.sleep(0.3)  # nothing more arrives
        assert len(rx.requests) == 3
        assert len(rx.accepted) == 1
        body = json.loads(rx.accepted[0])
        assert body["event"] == "raised"
        assert body["site"] == "xinjian"
        assert body["alarm"]["id"] == 17
        assert body["alarm"]["first_seen"].endswith("+08:00")
        assert set(body["alarm"]) >= {"id", "type", "severity", "device", "state", "first_seen", "last_seen",
                                      "parent", "assignee", "note", "overdue"}  # fmt: skip
        assert {r[1]["X-Lightctl-Event"] for r in rx.requests} == {"17-raised-1764180006000"}
        assert notifier.stats["webhook:retries"] == 2


async def test_a_refusing_webhook_is_not_retried_and_gives_up() -> None:
    with Receiver(fail=10, fail_status=404) as rx:
        notifier = Notifier(CTX, webhooks=[Webhook(url=rx.url, retries=5)], backoff_s=0.01)
        async with running(notifier):
            notifier.alarm_event(event())
            await until(lambda: notifier.stats["webhook0:failed"] == 1)
        assert len(rx.requests) == 1


async def test_wecom_markdown_and_text_payloads() -> None:
    ok = b'{"errcode":0,"errmsg":"ok"}'
    with Receiver(answer=ok) as md, Receiver(answer=ok) as text:
        hooks = [Webhook(url=md.url, format="wecom"), Webhook(url=text.url, format="wecom", msgtype="text")]
        notifier = Notifier(CTX, webhooks=hooks, backoff_s=0.01)
        async with running(notifier):
            notifier.alarm_event(event())
            await until(lambda: len(md.accepted) == 1 and len(text.accepted) == 1)
    m = json.loads(md.accepted[0])
    assert m["msgtype"] == "markdown"
    assert set(m) == {"msgtype", "markdown"}
    content = m["markdown"]["content"]
    assert "疑似电缆被盗" in content
    assert "5号箱变 阳明路" in content
    assert "#17" in content
    assert '<font color="warning">' in content
    assert len(content.encode()) <= 4096
    t = json.loads(text.accepted[0])
    assert t["msgtype"] == "text"
    assert "疑似电缆被盗" in t["text"]["content"]
    assert "30 条子告警" in t["text"]["content"]


async def test_wecom_rate_limit_answer_is_retried() -> None:
    busy = b'{"errcode":45009,"errmsg":"api freq out of limit"}'
    with Receiver(fail=1, fail_status=200, fail_answer=busy, answer=b'{"errcode":0}') as rx:
        notifier = Notifier(CTX, webhooks=[Webhook(url=rx.url, format="wecom")], backoff_s=0.01)
        async with running(notifier):
            notifier.alarm_event(event())
            await until(lambda: notifier.stats["webhook0:delivered"] == 1)
        assert len(rx.requests) == 2


async def test_dingtalk_markdown_signed() -> None:
    secret = "SEC0123456789abcdef"
    with Receiver(answer=b'{"errcode":0,"errmsg":"ok"}') as rx:
        hook = Webhook(url=rx.url, format="dingtalk", secret=secret)
        notifier = Notifier(CTX, webhooks=[hook], backoff_s=0.01)
        async with running(notifier):
            notifier.alarm_event(event("resolved"))
            await until(lambda: len(rx.accepted) == 1)
    body = json.loads(rx.accepted[0])
    assert body["msgtype"] == "markdown"
    assert body["markdown"]["title"].startswith("【恢复")
    assert "恢复:" in body["markdown"]["text"]
    assert "zhg-05" in body["markdown"]["text"]
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(rx.requests[0][0]).query)
    assert query["key"] == ["abc"]
    ts = query["timestamp"][0]
    want = base64.b64encode(
        hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    ).decode()
    assert query["sign"] == [want]


def test_dingtalk_text_shape_and_signature_helper() -> None:
    from lightctl.faults.messages import dingtalk_body

    body = json.loads(dingtalk_body(event(), CTX, "text"))
    assert body["msgtype"] == "text"
    assert body["text"]["content"].startswith("【告警·紧急】疑似电缆被盗")
    url = dingtalk_signed("https://oapi.dingtalk.com/robot/send?access_token=x", "s", now_ms=1700000000000)
    assert "&timestamp=1700000000000&sign=" in url


async def test_severity_floor_per_webhook() -> None:
    with Receiver() as rx:
        notifier = Notifier(CTX, webhooks=[Webhook(url=rx.url, min_severity="critical")], backoff_s=0.01)
        async with running(notifier):
            notifier.alarm_event(event(severity=Severity.MAJOR))
            notifier.alarm_event(event(severity=Severity.CRITICAL))
            await until(lambda: len(rx.accepted) == 1)
            await asyncio.sleep(0.2)
        assert [json.loads(b)["alarm"]["severity"] for b in rx.accepted] == ["critical"]


async def test_mqtt_channel_and_event_stream() -> None:
    published: list[tuple[str, bytes]] = []

    async def publish(topic: str, payload: bytes) -> None:
        published.append((topic, payload))

    stream = EventStream()
    notifier = Notifier(CTX, stream=stream, mqtt_publish=publish)
    with stream.subscribe() as queue:
        async with running(notifier):
            notifier.alarm_event(event())
            notifier.alarm_event(event("updated", notify=False))  # a child or held alarm: console only
            await until(lambda: len(published) == 1)
            await asyncio.sleep(0.1)
        assert [t for t, _ in published] == ["lightctl/xinjian/alarms"]
        assert json.loads(published[0][1])["alarm"]["type"] == "cable_theft_suspected"
        got = [queue.get_nowait() for _ in range(queue.qsize())]
    assert [(e.name, json.loads(e.data)["event"]) for e in got] == [("alarm", "raised"), ("alarm", "updated")]
    assert stream.subscribers == 0


def test_a_slow_stream_subscriber_loses_its_oldest_events() -> None:
    stream = EventStream(maxsize=3)
    with stream.subscribe() as queue:
        for n in range(5):
            stream.publish("state", str(n))
        assert [queue.get_nowait().data for _ in range(3)] == ["2", "3", "4"]
    assert stream.dropped == 2


def test_alarm_json_overdue_and_offset() -> None:
    ctx = Context("xinjian", TZ, lambda d: "", lambda a, now: now - a.first_seen > 3600)
    doc = alarm_json(event().alarm, ctx, T0 + 7200)
    assert doc["overdue"] is True
    assert doc["last_seen"] == "2025-11-27T02:00:05+08:00"


class _Smtp(socketserver.StreamRequestHandler):
    messages: ClassVar[list[str]] = []

    def handle(self) -> None:
        self.wfile.write(b"220 localhost ESMTP\r\n")
        data: list[str] = []
        in_data = False
        for raw in self.rfile:
            line = raw.decode()
            if in_data:
                if line == ".\r\n":
                    in_data = False
                    _Smtp.messages.append("".join(data))
                    self.wfile.write(b"250 OK\r\n")
                else:
                    data.append(line)
                continue
            verb = line[:4].upper()
            if verb == "EHLO":
                self.wfile.write(b"250 localhost\r\n")
            elif verb == "DATA":
                in_data = True
                self.wfile.write(b"354 go ahead\r\n")
            elif verb == "QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")


@pytest.fixture
def smtp_server() -> Iterator[int]:
    _Smtp.messages = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


async def test_mail_channel(smtp_server: int) -> None:
    smtp = Smtp(host="127.0.0.1", port=smtp_server, sender="lightctl@example.org", to=["crew@example.org"])
    notifier = Notifier(CTX, smtp=smtp, backoff_s=0.01)
    async with running(notifier):
        notifier.alarm_event(event())
        await until(lambda: notifier.stats["smtp:delivered"] == 1)
    assert len(_Smtp.messages) == 1
    assert "crew@example.org" in _Smtp.messages[0]

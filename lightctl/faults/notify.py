"""Telling people: the in-process event stream (the API's server-sent events), the MQTT topic
`lightctl/<site>/alarms`, webhooks (generic JSON, WeCom group robot, DingTalk robot) and mail.

The AlarmManager hands every AlarmEvent to `Notifier.alarm_event` (it must not block): the event
stream gets all of them; the channels get those meant for crews (`event.notify`: raised, resolved,
escalated, overdue, never for held alarms or children). Each channel has its own queue and task, so
a dead webhook delays nobody else; a delivery is retried with exponential backoff (real seconds: a
server's recovery does not follow a simulated clock), and a queue that overflows drops its oldest
event, counted.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import inspect
import logging
import smtplib
import time
import urllib.parse
from collections import Counter, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal, Protocol

import httpx
import orjson

from lightctl.config.settings import Smtp, Webhook
from lightctl.faults import messages
from lightctl.faults.lifecycle import AlarmEvent

log = logging.getLogger(__name__)

Publish = Callable[[str, bytes], object]  # (topic, payload); may return an awaitable
QUEUE_MAX = 10_000


@dataclass(frozen=True, slots=True)
class StreamEvent:
    id: int
    name: str  # the SSE `event:` field, e.g. "alarm"
    data: str  # JSON text


class EventStream:
    """Fan-out to the API's SSE subscribers; others (state changes, overrides) may publish too."""

    def __init__(self, maxsize: int = 1000) -> None:
        self.maxsize = maxsize
        self.dropped = 0
        self._subscribers: set[asyncio.Queue[StreamEvent]] = set()
        self._next = 1

    def publish(self, name: str, data: str) -> None:
        event = StreamEvent(self._next, name, data)
        self._next += 1
        for queue in self._subscribers:
            if queue.full():
                with contextlib.suppress(asyncio.QueueEmpty):
                    queue.get_nowait()  # a slow reader loses its oldest event, not the newest
                self.dropped += 1
            queue.put_nowait(event)

    @contextlib.contextmanager
    def subscribe(self) -> Iterator[asyncio.Queue[StreamEvent]]:
        queue: asyncio.Queue[StreamEvent] = asyncio.Queue(self.maxsize)
        self._subscribers.add(queue)
        try:
            yield queue
        finally:
            self._subscribers.discard(queue)

    async def events(self) -> AsyncIterator[StreamEvent]:
        with self.subscribe() as queue:
            while True:
                yield await queue.get()

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)


class StreamSink(Protocol):
    """Where console events go: EventStream here, or the API's EventHub (api/events.py)."""

    def publish(self, kind: Literal["alarm"], payload: str, /) -> None: ...


class _Channel:
    """One destination: a queue of pending deliveries and the task that works through it."""

    def __init__(self, name: str, send: Callable[[AlarmEvent], Awaitable[bool]], stats: Counter[str]) -> None:
        self.name = name
        self.send = send
        self.stats = stats
        self.queue: deque[AlarmEvent] = deque()
        self.wake = asyncio.Event()

    def put(self, event: AlarmEvent) -> None:
        if len(self.queue) >= QUEUE_MAX:
            self.queue.popleft()
            self.stats[f"{self.name}:dropped"] += 1
        self.queue.append(event)
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.queue:
                event = self.queue.popleft()
                try:
                    ok = await self.send(event)
                except Exception:
                    log.exception("notify %s: delivery of alarm %s failed", self.name, event.alarm.id)
                    ok = False
                self.stats[f"{self.name}:{'delivered' if ok else 'failed'}"] += 1


class Notifier:
    def __init__(
        self,
        ctx: messages.Context,
        *,
        stream: StreamSink | None = None,
        mqtt_publish: Publish | None = None,
        webhooks: tuple[Webhook, ...] | list[Webhook] = (),
        smtp: Smtp | None = None,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
    ) -> None:
        self.ctx = ctx
        self.stream = stream
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.stats: Counter[str] = Counter()
        self._client: httpx.AsyncClient | None = None
        self._channels: list[tuple[_Channel, Callable[[AlarmEvent], bool]]] = []
        if mqtt_publish is not None:
            publish = mqtt_publish
            topic = f"lightctl/{ctx.site}/alarms"

            async def send_mqtt(event: AlarmEvent) -> bool:
                result = publish(topic, messages.generic_body(event, ctx))
                if inspect.isawaitable(result):
                    result = await result
                return result is not False

            self._add("mqtt", send_mqtt, lambda e: True)
        for n, hook in enumerate(webhooks):
            self._add(f"webhook{n}", self._webhook_sender(hook), _at_least(hook.min_severity))
        if smtp is not None:
            self._add("smtp", self._smtp_sender(smtp), lambda e: True)

    def _add(
        self, name: str, send: Callable[[AlarmEvent], Awaitable[bool]], wants: Callable[[AlarmEvent], bool]
    ) -> None:
        self._channels.append((_Channel(name, send, self.stats), wants))

    def alarm_event(self, event: AlarmEvent) -> None:
        if self.stream is not None:
            data = orjson.dumps(
                {
                    "event": event.kind,
                    "alarm": messages.alarm_json(event.alarm, self.ctx, event.at),
                    "children": event.children,
                }
            )
            self.stream.publish("alarm", data.decode())
        if not event.notify:
            return
        for channel, wants in self._channels:
            if wants(event):
                channel.put(event)

    async def run(self) -> None:
        """Deliver until cancelled."""
        async with httpx.AsyncClient() as client:
            self._client = client
            tasks = [asyncio.create_task(c.run(), name=f"notify-{c.name}") for c, _ in self._channels]
            try:
                if tasks:
                    await asyncio.gather(*tasks)
                else:
                    await asyncio.Event().wait()
            finally:
                for task in tasks:
                    task.cancel()
                for task in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
                self._client = None

    def pending(self) -> int:
        return sum(len(c.queue) for c, _ in self._channels)

    # --- senders ---------------------------------------------------------------------------------

    async def _retrying(self, what: str, attempt: Callable[[], Awaitable[bool | None]], retries: int) -> bool:
        """Call `attempt` until it returns True (delivered) or False (refused for good); None: retry."""
        delay = self.backoff_s
        for n in range(retries + 1):
            result = await attempt()
            if result is not None:
                return result
            if n < retries:
                self.stats[f"{what}:retries"] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.max_backoff_s)
        return False

    def _webhook_sender(self, hook: Webhook) -> Callable[[AlarmEvent], Awaitable[bool]]:
        ctx = self.ctx

        async def send(event: AlarmEvent) -> bool:
            if hook.format == "wecom":
                body = messages.wecom_body(event, ctx, hook.msgtype)
            elif hook.format == "dingtalk":
                body = messages.dingtalk_body(event, ctx, hook.msgtype)
            else:
                body = messages.generic_body(event, ctx)
            headers = {"Content-Type": "application/json", "X-Lightctl-Event": messages.event_id(event)}

            async def attempt() -> bool | None:
                client = self._client
                if client is None:
                    raise RuntimeError("Notifier.run is not running")
                url = (
                    dingtalk_signed(hook.url, hook.secret)
                    if hook.format == "dingtalk" and hook.secret
                    else hook.url
                )
                try:
                    resp = await client.post(url, content=body, headers=headers, timeout=hook.timeout_s)
                except httpx.HTTPError as exc:
                    log.warning("webhook %s: %s", _safe(hook.url), exc)
                    return None
                if resp.status_code >= 500 or resp.status_code in (408, 429):
                    return None
                if resp.status_code >= 400:
                    log.error(
                        "webhook %s refused alarm %s: HTTP %d",
                        _safe(hook.url),
                        event.alarm.id,
                        resp.status_code,
                    )
                    return False
                if hook.format in ("wecom", "dingtalk"):
                    return _robot_accepted(resp)
                return True

            return await self._retrying("webhook", attempt, hook.retries)

        return send

    def _smtp_sender(self, smtp: Smtp) -> Callable[[AlarmEvent], Awaitable[bool]]:
        def deliver(msg: EmailMessage) -> None:
            with smtplib.SMTP(smtp.host, smtp.port, timeout=10) as conn:
                if smtp.starttls:
                    conn.starttls()
                if smtp.username:
                    conn.login(smtp.username, smtp.password or "")
                conn.send_message(msg)

        async def send(event: AlarmEvent) -> bool:
            subject, text = messages.mail_subject_and_body(event, self.ctx)
            msg = EmailMessage()
            msg["Subject"] = subject
            msg["From"] = smtp.sender
            msg["To"] = ", ".join(smtp.to)
            msg.set_content(text)

            async def attempt() -> bool | None:
                try:
                    await asyncio.to_thread(deliver, msg)
                except (OSError, smtplib.SMTPException) as exc:
                    log.warning("smtp %s:%d: %s", smtp.host, smtp.port, exc)
                    return None
                return True

            return await self._retrying("smtp", attempt, 5)

        return send


def _robot_accepted(resp: httpx.Response) -> bool | None:
    """WeCom and DingTalk answer HTTP 200 with {"errcode": 0} when they take the message."""
    try:
        answer = resp.json()
    except ValueError:
        return None
    code = answer.get("errcode") if isinstance(answer, dict) else None
    if code == 0:
        return True
    if code in (45009, 130101, -1):  # rate limited / busy: worth another try
        return None
    log.error("robot webhook refused the message: %s", answer)
    return False


def dingtalk_signed(url: str, secret: str, now_ms: int | None = None) -> str:
    """DingTalk 加签: &timestamp=<ms>&sign=urlencode(base64(hmac_sha256(secret, f"{ts}\\n{secret}")))."""
    ts = int(time.time() * 1000) if now_ms is None else now_ms
    digest = hmac.new(secret.encode(), f"{ts}\n{secret}".encode(), hashlib.sha256).digest()
    sign = urllib.parse.quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={ts}&sign={sign}"


def _at_least(min_severity: str) -> Callable[[AlarmEvent], bool]:
    rank = {"minor": 0, "major": 1, "critical": 2}
    floor = rank[min_severity]
    return lambda e: rank[e.alarm.severity.value] >= floor


def _safe(url: str) -> str:
    """A webhook URL carries its key: log the host only."""
    return urllib.parse.urlsplit(url).netloc

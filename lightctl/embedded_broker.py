"""Embedded MQTT 3.1.1 broker (amqtt) for `lightctl demo` and for tests where no Mosquitto runs."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import socket
from typing import Any

from amqtt.broker import Broker
from amqtt.errors import BrokerError

# amqtt logs every packet and connection at INFO; `transitions` drives its state machines.
_NOISY_LOGGERS = ("amqtt", "transitions")

# A free port probed with bind(0) can be taken by someone else before the broker binds it.
_PORT_ATTEMPTS = 5

# A clean shutdown takes about a millisecond.
_SHUTDOWN_PATIENCE = 0.25


def _require_loopback(host: str) -> None:
    if host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError as exc:
        raise ValueError(f"embedded broker host must be a loopback address, got {host!r}") from exc
    if not loopback:
        raise ValueError(f"embedded broker host must be a loopback address, got {host!r}")


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _config(host: str, port: int) -> dict[str, Any]:
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    return {
        # amqtt's default listener binds 0.0.0.0:1883.
        "listeners": {"default": {"type": "tcp", "bind": bind}},
        # An explicit plugin map replaces amqtt's defaults, which publish $SYS topics every 20 s and
        # log every packet; the anonymous plugin must stay, or no client can connect.
        "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
    }


def _address_in_use(exc: BaseException) -> bool:
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
            return True
        cause = cause.__cause__
    return False


class EmbeddedBroker:
    """A running amqtt broker bound to `host:port`."""

    def __init__(self, broker: Any, host: str, port: int) -> None:
        self._broker = broker
        self.host = host
        self.port = port
        self._running = True

    async def stop(self) -> None:
        if not self._running:
            return
        self._running = False
        # amqtt's shutdown cancels each client's reader task and waits for it. On Python 3.11,
        # asyncio.wait_for swallows a cancellation that coincides with its read completing (CPython
        # gh-86296), e.g. a PUBACK arriving just then, and the shutdown hangs forever. Feeding EOF
        # ends such a stuck reader the way a closed socket would.
        handlers = [handler for _, handler in self._broker.sessions.values()]
        shutdown = asyncio.ensure_future(self._broker.shutdown())
        while not shutdown.done():
            await asyncio.wait({shutdown}, timeout=_SHUTDOWN_PATIENCE)
            for handler in handlers:
                reader = getattr(handler, "reader", None)
                if reader is not None and hasattr(reader, "feed_eof"):
                    reader.feed_eof()
        await shutdown

    def __repr__(self) -> str:
        return f"EmbeddedBroker({self.host}:{self.port}, running={self._running})"


async def _start(host: str, port: int) -> EmbeddedBroker:
    broker = Broker(_config(host, port))
    await broker.start()
    return EmbeddedBroker(broker, host, port)


async def start_embedded_broker(host: str = "127.0.0.1", port: int = 0) -> EmbeddedBroker:
    """Start an anonymous MQTT 3.1.1 broker on loopback; port 0 picks a free port."""
    _require_loopback(host)
    for name in _NOISY_LOGGERS:
        logger = logging.getLogger(name)
        # amqtt reports every client that leaves mid-publish (the demo's simulators at shutdown) as an
        # error; only raise the level, never lower one the application chose.
        logger.setLevel(max(logger.getEffectiveLevel(), logging.WARNING))
    if port:
        return await _start(host, port)
    for _ in range(_PORT_ATTEMPTS - 1):
        try:
            return await _start(host, _free_port(host))
        except BrokerError as exc:
            if not _address_in_use(exc):
                raise
    return await _start(host, _free_port(host))

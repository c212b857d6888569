"""Error collection: every problem of a load as `<file>: <path>: <what is wrong>`."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from lightctl.config.yamlfile import YamlError, load_yaml

M = TypeVar("M", bound=BaseModel)


class ConfigError(Exception):
    """All the problems found in one load, each a line `<file>: <path>: <message>`."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("\n".join(errors))
        self.errors = errors


def format_loc(loc: Iterable[int | str]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top)"


def _message(err: dict[str, object]) -> str:
    msg = str(err.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    if err.get("type") == "extra_forbidden":
        msg = "unknown key (check the spelling)"
    return msg


class Collector:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.errors: list[str] = []
        # A file that failed to parse leaves its ids unknown: don't report every reference to them.
        self.inventory_ok = True
        self.schedules_ok = True

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.base))
        except ValueError:
            return str(path)

    def add(self, path: Path, where: str, message: str) -> None:
        self.errors.append(f"{self.name(path)}: {where}: {message}")

    def parse(self, path: Path, cls: type[M]) -> M | None:
        try:
            data = load_yaml(path)
        except FileNotFoundError:
            self.add(path, "(file)", "file not found")
            return None
        except YamlError as exc:
            self.add(path, exc.where, f"YAML syntax error: {exc.message}")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self.add(path, "(file)", f"cannot read: {exc}")
            return None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            self.add(path, "(top)", f"expected a mapping of keys, got {type(data).__name__}")
            return None
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            for err in exc.errors():
                self.add(path, format_loc(err["loc"]), _message(dict(err)))
            return None

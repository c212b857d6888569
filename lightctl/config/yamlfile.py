"""YAML reading with the surprises of YAML 1.1 removed.

PyYAML follows YAML 1.1, where `on:` is the boolean True and `23:00` is the integer 1380: both would
silently corrupt a program step. This loader resolves only `true` / `false` as booleans, reads clock
times as strings, and refuses duplicate keys (the second would silently replace the first).
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml


class YamlError(Exception):
    """A file that is not valid YAML; `where` is `line L, column C`."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}")
        self.where = where
        self.message = message


class _Loader(yaml.SafeLoader):
    pass


_Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx) for tag, rx in resolvers if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:int")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:int",
    re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+)$"),
    list("-+0123456789"),
)


def _no_duplicates(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[object, object]:
    seen: dict[object, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key]})", key_node.start_mark
            )
        seen[key] = key_node.start_mark.line + 1
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_yaml(path: Path) -> object:
    """Parse one file; raises YamlError with its line and column, or OSError if unreadable."""
    text = path.read_text(encoding="utf-8")
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise YamlError(where, str(exc.problem or exc.context)) from None
    except yaml.YAMLError as exc:
        raise YamlError("(file)", str(exc)) from None

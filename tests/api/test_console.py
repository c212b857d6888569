"""The console's files: served with a strict policy, self-contained, every text in both languages."""

from __future__ import annotations

import re

import httpx

from lightctl.api.console import WEB_DIR
from tests.api.conftest import ThreadServer

IMPORT = re.compile(r"""^\s*import\s[^;]*?from\s+"([^"]+)";""", re.M | re.S)
URL = re.compile(r"""(?:https?:)?//[a-z0-9.-]+\.[a-z]{2,}""", re.I)
SVG_NAMESPACE = "http://www.w3.org/2000/svg"  # an XML name, never fetched


def console_files() -> list[str]:
    return sorted(str(p.relative_to(WEB_DIR)) for p in WEB_DIR.rglob("*") if p.is_file())


def test_index_and_every_module_it_imports_are_served(server: ThreadServer) -> None:
    with httpx.Client(timeout=10) as client:
        index = client.get(f"{server.url}/")
        assert index.status_code == 200
        assert "default-src 'self'" in index.headers["content-security-policy"]
        assert index.headers["x-content-type-options"] == "nosniff"
        css = client.get(f"{server.url}/ui/app.css")
        assert css.status_code == 200
        assert css.headers["content-type"].startswith("text/css")
        # Walk the module graph from the entry point, as the browser does.
        pending, seen = ["js/app.js"], set()
        while pending:
            path = pending.pop()
            if path in seen:
                continue
            seen.add(path)
            response = client.get(f"{server.url}/ui/{path}")
            assert response.status_code == 200, path
            assert "javascript" in response.headers["content-type"], path  # module scripts need it
            assert "default-src 'self'" in response.headers["content-security-policy"]
            base = path.rsplit("/", 1)[0]
            for target in IMPORT.findall(response.text):
                pending.append(_join(base, target))
    assert {"js/app.js", "js/api.js", "js/store.js", "js/i18n.js", "js/pages/map.js"} <= seen
    unused = {f for f in console_files() if f.endswith(".js")} - seen
    assert not unused, f"files no page imports: {unused}"


def _join(base: str, target: str) -> str:
    parts = base.split("/")
    for piece in target.split("/"):
        if piece == "..":
            parts.pop()
        elif piece != ".":
            parts.append(piece)
    return "/".join(parts)


def test_nothing_is_loaded_from_another_host() -> None:
    offenders = []
    for name in console_files():
        text = (WEB_DIR / name).read_text(encoding="utf-8").replace(SVG_NAMESPACE, "")
        offenders += [f"{name}: {m}" for m in URL.findall(text)]
        offenders += [f"{name}: @import" for _ in re.findall(r"@import|@font-face", text)]
    assert not offenders


def _table(source: str, name: str) -> set[str]:
    body = source.split(f"const {name} = {{", 1)[1].split("\n};", 1)[0]
    return set(re.findall(r'"([a-z0-9_.]+)":', body))


def test_every_text_exists_in_chinese_and_english() -> None:
    source = (WEB_DIR / "js" / "i18n.js").read_text(encoding="utf-8")
    zh, en = _table(source, "zh"), _table(source, "en")
    assert len(zh) > 100
    assert zh == en, f"only in zh: {sorted(zh - en)}; only in en: {sorted(en - zh)}"
    used: set[str] = set()
    for name in console_files():
        text = (WEB_DIR / name).read_text(encoding="utf-8")
        used |= set(re.findall(r'\bt\("([a-z0-9_.]+)"', text))  # t("key") with a literal key
        used |= set(re.findall(r'data-i18n="([a-z0-9_.]+)"', text))
        used |= set(re.findall(r'(?:heading|field)\("([a-z0-9_.]+)"', text))
    assert len(used) > 50
    assert not used - zh, f"texts without a translation: {sorted(used - zh)}"
    # Every alarm type of design.md section 4 has a name in both languages.
    alarm_types = {
        "lamp_failure", "control_gear_failure", "day_burner", "relay_failure", "dim_mismatch", "cycling",
        "voltage_high", "voltage_low", "power_factor_low", "over_temperature", "leakage", "door_open",
        "breaker_tripped", "pole_tilt", "supply_loss", "cable_theft_suspected", "comm_loss", "command_failed",
        "energy_anomaly", "calendar_data_missing",
    }  # fmt: skip
    assert {f"at.{a}" for a in alarm_types} <= zh

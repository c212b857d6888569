"""The district's files load, and every kind of broken input names its file and path."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import pytest

from lightctl.cli import main
from lightctl.config.loader import ConfigError, load

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A private copy of the repository's configuration to break."""
    shutil.copy(REPO / "config.yaml", tmp_path / "config.yaml")
    shutil.copytree(REPO / "devices", tmp_path / "devices")
    shutil.copytree(REPO / "schedules", tmp_path / "schedules")
    return tmp_path


def test_sample_district_has_the_planned_counts() -> None:
    district = load(REPO / "config.yaml")
    counts = district.counts()
    assert counts["roads"] == 5
    assert 300 <= counts["lamps"] <= 900
    assert counts["groups"] == 600
    assert 15 <= counts["gateways"] <= 25
    assert counts["zones"] >= 4
    names = {road.name for road in district.roads.values()}
    assert names == {"恒安路", "子山路", "德政路", "正德路", "环城西路"}
    zone_names = {z.name for z in district.zones.values()}
    assert {"行政中心周边休闲文化片区", "龙城国际", "游泳馆", "体育馆"} <= zone_names


def test_sample_lamps_are_spaced_30_to_40_m_and_rated_60_to_150_w() -> None:
    district = load(REPO / "config.yaml")
    for road in district.roads.values():
        lamps = [district.devices[i] for i in road.lamps if not i.endswith("school")]
        for a, b in itertools.pairwise(lamps):
            gap = _metres(a.lat, a.lon, b.lat, b.lon)
            assert 29 <= gap <= 41, (road.id, a.id, b.id, gap)
        for lamp in lamps:
            assert 60 <= lamp.rated_w <= 150
    for dev in district.devices.values():
        assert -90 <= dev.lat <= 90
        assert -180 <= dev.lon <= 180
        if dev.kind == "group":
            assert dev.k1_w
            assert dev.k2_w is not None
            assert dev.unit_id is not None


def _metres(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    import math

    r = 6_371_000
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def test_check_prints_counts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "-c", str(REPO / "config.yaml")]) == 0
    out = capsys.readouterr().out
    assert "5 roads" in out
    assert "600 groups" in out
    assert "4 zones" in out


def _nth(text: str, old: str, new: str, n: int) -> str:
    """Replace the n-th (0-based) occurrence of old."""
    parts = text.split(old)
    assert len(parts) > n + 1, f"{old!r} occurs fewer than {n + 1} times"
    return old.join(parts[: n + 1]) + new + old.join(parts[n + 1 :])


def _edit(root: Path, rel: str, old: str, new: str, n: int = 0) -> None:
    path = root / rel
    path.write_text(_nth(path.read_text(encoding="utf-8"), old, new, n), encoding="utf-8")


BROKEN = [
    # (case, file, old text, new text, occurrence, expected message prefix, expected words)
    (
        "yaml syntax",
        "devices/roads.yaml",
        "    spacing_m: 35\n",
        "    spacing_m: [35\n",
        0,
        "devices/roads.yaml: line ",
        "YAML syntax error",
    ),
    (
        "unknown key",
        "config.yaml",
        "  keepalive_s: 30",
        "  keepalive: 30",
        0,
        "config.yaml: mqtt.keepalive: ",
        "unknown key",
    ),
    (
        "duplicate id",
        "devices/facades.yaml",
        "id: longcheng",
        "id: admin-centre",
        0,
        "devices/facades.yaml: zones[1].id: ",
        "duplicate id 'admin-centre'",
    ),
    (
        "unit id 0",
        "devices/groups.yaml",
        'units: "1-30"',
        'units: "0-30"',
        3,
        "devices/groups.yaml: gateways[3].units: ",
        "unit id 0 out of range 1-247",
    ),
    (
        "unit id 248",
        "devices/groups.yaml",
        'units: "1-30"',
        'units: "219-248"',
        5,
        "devices/groups.yaml: gateways[5].units: ",
        "unit id 248 out of range 1-247",
    ),
    (
        "level 101",
        "schedules/programs.yaml",
        "level: 70}",
        "level: 101}",
        0,
        "schedules/programs.yaml: programs[0].steps[1].level: ",
        "less than or equal to 100",
    ),
    (
        "unknown profile",
        "devices/facades.yaml",
        "profile: fcd-s1",
        "profile: fcd-s9",
        2,
        "devices/facades.yaml: zones[2].profile: ",
        "unknown profile 'fcd-s9'",
    ),
    (
        "unknown gateway target",
        "schedules/plans.yaml",
        "targets: [kind:group]",
        "targets: [gateway:zhg-99]",
        0,
        "schedules/plans.yaml: plans[2].targets[0]: ",
        "unknown target 'gateway:zhg-99'",
    ),
    (
        "unknown concentrator",
        "devices/roads.yaml",
        "concentrator: hcx-plc-1",
        "concentrator: hcx-plc-9",
        0,
        "devices/roads.yaml: roads[4].concentrator: ",
        "unknown concentrator 'hcx-plc-9'",
    ),
    (
        "bad time expression",
        "schedules/programs.yaml",
        "at: sunset+5m,",
        "at: sunset+x,",
        0,
        "schedules/programs.yaml: programs[1].steps[0].at: ",
        "bad time 'sunset+x'",
    ),
    (
        "bad coordinate",
        "devices/facades.yaml",
        "at: [28.6760, 115.8920]",
        "at: [98.6760, 115.8920]",
        0,
        "devices/facades.yaml: zones[1].at[0]: ",
        "less than or equal to 90",
    ),
    (
        "empty road",
        "devices/roads.yaml",
        "    spacing_m: 30\n    id_prefix: dz\n    mqtt_prefix: DZ\n",
        "",
        0,
        "devices/roads.yaml: roads[2]: ",
        "road has no lamps",
    ),
    ("wrong type", "config.yaml", "port: 1883", "port: abc", 0, "config.yaml: mqtt.port: ", "valid integer"),
    (
        "duplicate yaml key",
        "config.yaml",
        "  timezone: Asia/Shanghai\n",
        "  timezone: Asia/Shanghai\n  lat: 28.1\n",
        0,
        "config.yaml: line ",
        "duplicate key 'lat'",
    ),
    (
        "unknown program",
        "schedules/plans.yaml",
        "program: secondary-dimming",
        "program: secondary-diming",
        0,
        "schedules/plans.yaml: plans[1].rules[0].program: ",
        "unknown program 'secondary-diming'",
    ),
    (
        "unknown holiday",
        "schedules/plans.yaml",
        "holiday: [春节, 劳动节, 国庆节]",
        "holiday: [春节, 劳东节]",
        0,
        "schedules/plans.yaml: plans[3].rules[0].holiday: ",
        "unknown holiday '劳东节'",
    ),
    (
        "bad timezone",
        "config.yaml",
        "timezone: Asia/Shanghai",
        "timezone: Asia/Beijing",
        0,
        "config.yaml: site.timezone: ",
        "unknown time zone",
    ),
    (
        "step field of another kind",
        "schedules/programs.yaml",
        '{at: "23:00", level: 70}',
        '{at: "23:00", level: 70, scene: 2}',
        0,
        "schedules/programs.yaml: programs[0]: ",
        "scene do not apply to lamp programs",
    ),
    (
        "duplicate mqtt id",
        "devices/roads.yaml",
        "mqtt_id: ZD-S01",
        "mqtt_id: ZD-001",
        0,
        "devices/roads.yaml: roads[3].lamps[0].mqtt_id: ",
        "address mqtt:ZD-001 already used",
    ),
    (
        "overlapping registers",
        "devices/profiles/zhd-g2.yaml",
        "table: input, address: 9,",
        "table: input, address: 8,",
        0,
        "devices/profiles/zhd-g2.yaml: modbus: ",
        "overlap",
    ),
    (
        "program of another kind in a plan",
        "schedules/plans.yaml",
        "{program: arterial-dimming}",
        "{program: facade-weekday}",
        0,
        "schedules/plans.yaml: plans[0].rules[0].program: ",
        "program 'facade-weekday' is for facade devices",
    ),
    (
        "slug with a slash",
        "devices/facades.yaml",
        "id: gymnasium",
        "id: gym/nasium",
        0,
        "devices/facades.yaml: zones[3].id: ",
        "should match pattern",
    ),
]


@pytest.mark.parametrize(
    ("case", "rel", "old", "new", "n", "prefix", "words"), BROKEN, ids=[b[0] for b in BROKEN]
)
def test_broken_input_names_file_and_path(
    tree: Path,
    capsys: pytest.CaptureFixture[str],
    case: str,
    rel: str,
    old: str,
    new: str,
    n: int,
    prefix: str,
    words: str,
) -> None:
    _edit(tree, rel, old, new, n)
    with pytest.raises(ConfigError) as caught:
        load(tree / "config.yaml")
    matching = [e for e in caught.value.errors if e.startswith(prefix) and words in e]
    assert matching, f"{case}: no error starting {prefix!r} containing {words!r} in {caught.value.errors}"

    with pytest.raises(SystemExit) as code:
        main(["check", "-c", str(tree / "config.yaml")])
    assert code.value.code == 2
    err_lines = capsys.readouterr().err.strip().splitlines()
    assert err_lines == caught.value.errors  # one line per error, nothing else


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as code:
        main(["check", "-c", str(tmp_path / "config.yaml")])
    assert code.value.code == 2
    assert capsys.readouterr().err.strip() == "config.yaml: (file): file not found"


def test_missing_inventory_folder(tree: Path) -> None:
    shutil.rmtree(tree / "schedules")
    with pytest.raises(ConfigError) as caught:
        load(tree / "config.yaml")
    assert "schedules: (folder): folder not found" in caught.value.errors


def test_every_error_of_a_load_is_reported(tree: Path) -> None:
    _edit(tree, "config.yaml", "  keepalive_s: 30", "  keepalive: 30")
    _edit(tree, "devices/groups.yaml", 'units: "1-30"', 'units: "0-30"', 3)
    _edit(tree, "schedules/programs.yaml", "level: 70}", "level: 101}")
    with pytest.raises(ConfigError) as caught:
        load(tree / "config.yaml")
    # one error per broken place, and no echoes of them elsewhere (plans naming the broken programs)
    files = [e.split(":")[0] for e in caught.value.errors]
    assert files == ["config.yaml", "devices/groups.yaml", "schedules/programs.yaml"]


def test_yaml_1_1_traps_are_avoided(tree: Path) -> None:
    """`on:` stays a key (not True) and 23:00 stays a time (not the integer 1380)."""
    district = load(tree / "config.yaml")
    step = district.programs["arterial-dimming"].steps[1]
    assert step.at == "23:00"
    assert district.programs["arterial-dimming"].steps[0].on is True

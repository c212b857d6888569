"""Load and cross-check config.yaml, devices/ and schedules/ into one District.

Every problem of a load is collected and reported as `<file>: <path>: <what is wrong>`; nothing
starts on an invalid configuration.
"""

from pathlib import Path

from lightctl.config import inventory as inv
from lightctl.config.collect import Collector as _Collector
from lightctl.config.collect import ConfigError, M
from lightctl.config.district import District, target_devices
from lightctl.config.expand import assemble
from lightctl.config.schedules import HolidayFile, ScheduleFile
from lightctl.config.settings import Settings
from lightctl.profiles import Profile

__all__ = ["ConfigError", "District", "load", "target_devices"]


def load(config_path: str | Path = "config.yaml") -> District:
    """Load a whole configuration; raises ConfigError listing every problem."""
    config_file = Path(config_path).resolve()
    base = config_file.parent
    col = _Collector(base)
    settings = col.parse(config_file, Settings)
    # Even with a broken config.yaml the other files are checked (in their default folders), so
    # one run of `lightctl check` shows every problem.
    devices_dir = base / (settings.devices_dir if settings else "devices")
    schedules_dir = base / (settings.schedules_dir if settings else "schedules")
    if settings is None and not devices_dir.is_dir():
        raise ConfigError(col.errors)
    profiles = _load_profiles(col, devices_dir / "profiles")
    before = len(col.errors)
    inventory = _load_all(col, devices_dir, inv.InventoryFile)
    inventory_ok = len(col.errors) == before
    before = len(col.errors)
    schedules = _load_all(col, schedules_dir, ScheduleFile)
    col.schedules_ok = len(col.errors) == before
    col.inventory_ok = inventory_ok
    holidays = _load_holidays(col, schedules_dir / "holidays")
    if settings is None:
        raise ConfigError(col.errors)
    district = assemble(col, base, settings, profiles, inventory, schedules, holidays)
    if col.errors:
        raise ConfigError(col.errors)
    return district


def _load_profiles(col: _Collector, folder: Path) -> dict[str, tuple[Path, Profile]]:
    out: dict[str, tuple[Path, Profile]] = {}
    if not folder.is_dir():
        col.add(folder, "(folder)", "profiles folder not found")
        return out
    for path in sorted(folder.glob("*.yaml")):
        profile = col.parse(path, Profile)
        if profile is None:
            continue
        if profile.id in out:
            col.add(
                path, "id", f"profile id {profile.id!r} already defined in {col.name(out[profile.id][0])}"
            )
            continue
        out[profile.id] = (path, profile)
    return out


def _load_all(col: _Collector, folder: Path, cls: type[M]) -> list[tuple[Path, M]]:
    if not folder.is_dir():
        col.add(folder, "(folder)", "folder not found")
        return []
    files = sorted(folder.glob("*.yaml"))
    if not files:
        col.add(folder, "(folder)", "no .yaml files")
    parsed = [(p, col.parse(p, cls)) for p in files]
    return [(p, m) for p, m in parsed if m is not None]


def _load_holidays(col: _Collector, folder: Path) -> dict[int, HolidayFile]:
    out: dict[int, HolidayFile] = {}
    if not folder.is_dir():
        return out
    for path in sorted(folder.glob("*.yaml")):
        parsed = col.parse(path, HolidayFile)
        if parsed is None:
            continue
        if path.stem != str(parsed.year):
            col.add(path, "year", f"file for {parsed.year} must be named {parsed.year}.yaml")
            continue
        out[parsed.year] = parsed
    return out

"""Every profile in devices/profiles/ loads, and its register map is sound."""

from __future__ import annotations

from pathlib import Path

import pytest

from lightctl.config.yamlfile import load_yaml
from lightctl.profiles import Profile, decode_bits, decode_words, encode_words, read_blocks

PROFILES = sorted((Path(__file__).resolve().parents[1] / "devices" / "profiles").glob("*.yaml"))


@pytest.mark.parametrize("path", PROFILES, ids=[p.stem for p in PROFILES])
def test_profile_loads_and_registers_do_not_overlap(path: Path) -> None:
    profile = Profile.model_validate(load_yaml(path))
    assert profile.id == path.stem
    if profile.modbus is None:
        assert profile.mqtt is not None
        return
    for table in ("coil", "discrete", "holding", "input"):
        taken: dict[int, str] = {}
        for reg in profile.modbus.registers:
            if reg.table != table:
                continue
            width = 2 if reg.type in ("uint32", "int32") else 1
            for address in range(reg.address, reg.address + width):
                assert address not in taken, f"{reg.name} overlaps {taken[address]} at {table} {address}"
                taken[address] = reg.name


def test_three_reference_devices_are_present() -> None:
    assert {p.stem for p in PROFILES} >= {"slc-m1", "zhd-g2", "fcd-s1"}


def test_zhd_g2_input_registers_are_read_in_one_request() -> None:
    profile = Profile.model_validate(load_yaml(next(p for p in PROFILES if p.stem == "zhd-g2")))
    assert profile.modbus is not None
    assert read_blocks(profile.modbus.registers, "input") == [(0, 13)]
    assert read_blocks(profile.modbus.registers, "coil") == [(0, 2)]


def test_codecs_follow_the_datasheet() -> None:
    profile = Profile.model_validate(load_yaml(next(p for p in PROFILES if p.stem == "zhd-g2")))
    assert profile.modbus is not None
    energy = profile.modbus.register("energy")
    # uint32 high word first: 0x0001_86A0 = 100,000 Wh
    assert decode_words(energy, [0x0001, 0x86A0]) == 100_000
    assert encode_words(energy, 100_000) == [0x0001, 0x86A0]
    temperature = profile.modbus.register("temperature")
    assert decode_words(temperature, [0xFF9C]) * temperature.scale == pytest.approx(-10.0)  # -10.0 deg C
    status = profile.modbus.register("status")
    assert decode_bits(status.bits, 0b110110) == {"breaker_tripped", "supply_lost", "k1_closed", "k2_closed"}

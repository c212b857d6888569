"""A simulated ZHD-G2 lamp group controller, built from its datasheet (devices.md section 2).

The register layout below is written from the datasheet, not taken from the zhd-g2 profile: the
driver reads the profile, the simulator follows the sheet, so a wrong profile shows up as a failing
test between the two. Only the electrical figures (power factors) may come from the profile.

State changes (coil writes, faults) are applied at once; what they cause (contactor feedback,
power, energy, burning hours) is evaluated lazily on the injected clock whenever a register is read.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from lightctl.clock import Clock
from lightctl.model import Device
from lightctl.sim.modbus_faults import DeviceException, ExceptionCode, FaultValue

# Function codes the datasheet lists: coils FC01/05/15, holding FC03/06/16, input FC04.
FUNCTION_CODES = frozenset({1, 3, 4, 5, 6, 15, 16})
COIL_COUNT = 2  # 0 k1, 1 k2
HOLDING_COUNT = 1  # 0 dim
INPUT_COUNT = 13  # 0 voltage .. 12 firmware
DIM_MAX = 100

# Input register 8, status bits.
BIT_DOOR = 0
BIT_BREAKER = 1
BIT_SUPPLY_LOST = 2
BIT_OVER_TEMPERATURE = 3
BIT_K1_FEEDBACK = 4
BIT_K2_FEEDBACK = 5

OVER_TEMPERATURE_C = 75.0
CONTACTOR_LAG_S = (0.03, 0.15)  # the sheet promises feedback within 200 ms
FIRMWARE = 0x0203


@dataclass(frozen=True)
class GroupTruth:
    """What the controller is really doing, for tests and for scoring detectors."""

    coil_k1: bool
    coil_k2: bool
    dim: int
    feedback_k1: bool
    feedback_k2: bool
    supply: bool
    breaker_tripped: bool
    power_k1_w: float  # noise-free
    power_k2_w: float
    energy_wh: float
    hours: float
    temperature_c: float
    faults: dict[str, FaultValue | None]


def _u16(value: float) -> int:
    return max(0, min(0xFFFF, round(value)))


def _i16(value: float) -> int:
    return max(-0x8000, min(0x7FFF, round(value))) & 0xFFFF


def _u32(value: float) -> tuple[int, int]:
    raw = int(value) & 0xFFFFFFFF
    return raw >> 16, raw & 0xFFFF  # high word first, as the sheet says


class GroupUnit:
    """One ZHD-G2 on a gateway's RS-485 bus."""

    kind = "group"
    function_codes = FUNCTION_CODES

    def __init__(
        self,
        device: Device,
        clock: Clock,
        rng: random.Random,
        *,
        pf_led: float = 0.95,
        pf_fixed_load: float = 0.90,
        noise: bool = True,
    ) -> None:
        self.device = device
        self._clock = clock
        self._rng = rng
        self._noise = noise
        self.k_w = (device.k1_w or 0.0, device.k2_w or 0.0)
        self.led = device.dimmable  # groups with an LED driver dim; the others ignore register 0
        self.pf = pf_led if self.led else pf_fixed_load
        self.faults: dict[str, FaultValue | None] = {}
        self.feeder_cut = False  # the gateway's cable was cut or stolen
        now = clock.now()
        self._coil = [False, False]
        self._coil_since = [now - 1.0, now - 1.0]
        self._lag = [0.0, 0.0]
        self._dim = 100
        self._last = now
        self.energy_wh = rng.uniform(200_000, 3_000_000) if noise else 1_234_567.0
        self.hours = float(rng.randint(2_000, 30_000)) if noise else 12_345.0
        self._ambient = rng.uniform(15.0, 30.0) if noise else 25.0
        self.firmware = FIRMWARE

    # --- physics ---------------------------------------------------------------------------------

    @property
    def silent(self) -> bool:
        return "no_response" in self.faults

    @property
    def supply(self) -> bool:
        return not self.feeder_cut and "supply_loss" not in self.faults

    @property
    def breaker_tripped(self) -> bool:
        return "breaker_tripped" in self.faults

    def _coil_effective(self, k: int, now: float) -> bool:
        # The contactor moves CONTACTOR_LAG_S after its coil changed.
        settled = now >= self._coil_since[k] + self._lag[k]
        return self._coil[k] if settled else not self._coil[k]

    def _stuck(self, k: int) -> bool | None:
        mode = self.faults.get("contactor_stuck")
        if isinstance(mode, str) and mode.startswith(f"k{k + 1}_"):
            return mode.endswith("_closed")
        return None

    def feedback(self, k: int, now: float) -> bool:
        stuck = self._stuck(k)
        if stuck is not None:
            return stuck  # welded or burnt-out contacts do not care about coil or supply
        if not self.supply or self.breaker_tripped:
            return False  # the contactor coils are fed after the breaker
        return self._coil_effective(k, now)

    def _lamp_failed(self, k: int) -> bool:
        circuit = self.faults.get("lamp_failure")
        return circuit in (f"k{k + 1}", "both")

    def _bypassed(self, k: int) -> bool:
        return self.faults.get("contactor_bypass", "") in (f"k{k + 1}", "both")

    def circuit_power(self, k: int, now: float) -> float:
        """Noise-free active power of a circuit in W."""
        if not self.supply or self.breaker_tripped or self._lamp_failed(k):
            return 0.0
        if not self.feedback(k, now) and not self._bypassed(k):
            return 0.0
        extra = self.faults.get("extra_load")
        share = 1.0 + (float(extra) if isinstance(extra, float | int) else 0.0)
        return self.k_w[k] * (self._dim / 100.0 if self.led else 1.0) * share

    def _advance(self) -> float:
        now = self._clock.now()
        dt = max(0.0, now - self._last)
        self._last = now
        power = self.circuit_power(0, now) + self.circuit_power(1, now)
        self.energy_wh += power * dt / 3600.0
        if power > 0:
            self.hours += dt / 3600.0
        return now

    def temperature(self, now: float) -> float:
        for fault in ("over_temperature", "temperature"):
            value = self.faults.get(fault)
            if isinstance(value, float | int):
                return float(value)
        lit = self.circuit_power(0, now) + self.circuit_power(1, now) > 0
        return self._ambient + (4.0 if lit else 0.0)

    def _jitter(self, spread: float) -> float:
        return self._rng.uniform(-spread, spread) if self._noise else 0.0

    # --- registers, as the datasheet lays them out -------------------------------------------------

    def read_coils(self, address: int, count: int) -> list[bool]:
        _check_range(address, count, COIL_COUNT)
        self._advance()
        return self._coil[address : address + count]

    def write_coils(self, address: int, values: list[bool]) -> None:
        _check_range(address, len(values), COIL_COUNT)
        now = self._advance()
        for k, value in enumerate(values, start=address):
            if value != self._coil[k]:
                self._coil[k] = value
                self._coil_since[k] = now
                self._lag[k] = self._rng.uniform(*CONTACTOR_LAG_S)

    def read_holding(self, address: int, count: int) -> list[int]:
        _check_range(address, count, HOLDING_COUNT)
        return [self._dim]

    def write_holding(self, address: int, values: list[int]) -> None:
        _check_range(address, len(values), HOLDING_COUNT)
        if values[0] > DIM_MAX:
            raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
        self._advance()
        self._dim = values[0]

    def read_input(self, address: int, count: int) -> list[int]:
        _check_range(address, count, INPUT_COUNT)
        return self.input_registers()[address : address + count]

    def input_registers(self) -> list[int]:
        now = self._advance()
        # A dead line reads only noise.
        voltage = 220.0 + self._jitter(3.0) if self.supply else abs(self._jitter(1.5))
        powers = [self.circuit_power(k, now) * (1.0 + self._jitter(0.05)) for k in (0, 1)]
        total = sum(powers)
        pf = self.pf + self._jitter(0.01) if total > 0 else 0.0
        currents = [p / (voltage * pf) if p > 0 and voltage > 0 else 0.0 for p in powers]
        leakage_fault = self.faults.get("leakage")
        if isinstance(leakage_fault, float | int):
            leakage = float(leakage_fault)
        else:
            leakage = (2.0 + abs(self._jitter(2.0))) if self.supply else 0.0
        temperature = self.temperature(now) + self._jitter(1.0)
        status = (
            ("door_open" in self.faults) << BIT_DOOR
            | self.breaker_tripped << BIT_BREAKER
            | (not self.supply) << BIT_SUPPLY_LOST
            | (temperature >= OVER_TEMPERATURE_C) << BIT_OVER_TEMPERATURE
            | self.feedback(0, now) << BIT_K1_FEEDBACK
            | self.feedback(1, now) << BIT_K2_FEEDBACK
        )
        return [
            _u16(voltage * 10),  # 0 voltage, 0.1 V
            _u16(currents[0] * 100),  # 1 current_k1, 0.01 A
            _u16(currents[1] * 100),  # 2 current_k2, 0.01 A
            _u16(total * 10),  # 3 power, 0.1 W
            _u16(pf * 1000),  # 4 pf, 0.001
            *_u32(self.energy_wh),  # 5-6 energy, Wh
            _u16(leakage),  # 7 leakage, mA
            status,  # 8 status bits
            _i16(temperature * 10),  # 9 temperature, 0.1 deg C, signed
            *_u32(self.hours),  # 10-11 burning hours
            self.firmware,  # 12 firmware
        ]

    def truth(self) -> GroupTruth:
        now = self._advance()
        return GroupTruth(
            coil_k1=self._coil[0],
            coil_k2=self._coil[1],
            dim=self._dim,
            feedback_k1=self.feedback(0, now),
            feedback_k2=self.feedback(1, now),
            supply=self.supply,
            breaker_tripped=self.breaker_tripped,
            power_k1_w=self.circuit_power(0, now),
            power_k2_w=self.circuit_power(1, now),
            energy_wh=self.energy_wh,
            hours=self.hours,
            temperature_c=self.temperature(now),
            faults=dict(self.faults),
        )

    def set_fault(self, fault: str, value: FaultValue | None) -> None:
        self._advance()  # energy up to now is owed to the state before the fault
        self.faults[fault] = value

    def clear_fault(self, fault: str) -> None:
        self._advance()
        self.faults.pop(fault, None)

    def set_feeder_cut(self, cut: bool) -> None:
        self._advance()
        self.feeder_cut = cut

    def set_counters(self, energy_wh: float | None = None, hours: float | None = None) -> None:
        self._advance()
        if energy_wh is not None:
            self.energy_wh = energy_wh
        if hours is not None:
            self.hours = hours


def _check_range(address: int, count: int, size: int) -> None:
    if address < 0 or address + count > size:
        raise DeviceException(ExceptionCode.ILLEGAL_DATA_ADDRESS)

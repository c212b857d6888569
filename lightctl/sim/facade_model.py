"""A simulated FCD-S1 facade scene controller, built from its datasheet (devices.md section 3).

As for the ZHD-G2, the register layout is the sheet's, not the profile's; the scene shares and the
channel count are electrical figures and may come from the profile.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from lightctl.clock import Clock
from lightctl.model import Device
from lightctl.sim.modbus_faults import DeviceException, ExceptionCode, FaultValue

# Function codes the datasheet lists: holding FC03/06/16, input FC04 (no coils).
FUNCTION_CODES = frozenset({3, 4, 6, 16})
UNIT_ID = 1
HOLDING_COUNT = 2  # 0 scene, 1 brightness
INPUT_COUNT = 7  # 0 active_scene .. 6 failed_channels
SCENE_MAX = 15
BRIGHTNESS_MAX = 100

BIT_CONTROLLER_FAULT = 0
BIT_CHANNEL_FAULT = 1
BIT_DOOR = 2

SCENE_FOLLOW_S = (0.5, 1.5)  # the sheet: the active scene follows a write within 2 s
DATASHEET_SHARES = {0: 0.0, 1: 0.45, 2: 0.75, 3: 1.0}
DATASHEET_CUSTOM_SHARE = 0.60
DATASHEET_CHANNELS = 8


@dataclass(frozen=True)
class FacadeFigures:
    scene_share: dict[int, float] = field(default_factory=lambda: dict(DATASHEET_SHARES))
    custom_scene_share: float = DATASHEET_CUSTOM_SHARE
    channels: int = DATASHEET_CHANNELS


@dataclass(frozen=True)
class FacadeTruth:
    scene: int
    brightness: int
    active_scene: int
    supply: bool
    failed_channels: int
    power_w: float  # noise-free
    energy_wh: float
    faults: dict[str, FaultValue | None]


class FacadeUnit:
    """One FCD-S1, reached directly over Modbus TCP as unit 1."""

    kind = "facade"
    function_codes = FUNCTION_CODES

    def __init__(
        self,
        device: Device,
        clock: Clock,
        rng: random.Random,
        *,
        figures: FacadeFigures | None = None,
        noise: bool = True,
    ) -> None:
        self.device = device
        self._clock = clock
        self._rng = rng
        self._noise = noise
        self.figures = figures or FacadeFigures()
        self.load_w = device.rated_w
        self.faults: dict[str, FaultValue | None] = {}
        now = clock.now()
        self._scene = 0
        self._active = 0
        self._follow_at: float | None = None
        self._brightness = 100
        self._last = now
        self.energy_wh = rng.uniform(1_000_000, 50_000_000) if noise else 7_654_321.0

    silent = False  # a facade controller is its own gateway: it answers or hangs as a whole

    @property
    def supply(self) -> bool:
        return "supply_loss" not in self.faults

    @property
    def failed_channels(self) -> int:
        n = self.faults.get("channel_fault")
        return int(n) if isinstance(n, int | float) else 0

    def _share(self, scene: int) -> float:
        if scene in self.figures.scene_share:
            return self.figures.scene_share[scene]
        return self.figures.custom_scene_share

    def power(self) -> float:
        """Noise-free active power in W."""
        if not self.supply:
            return 0.0
        working = max(0, self.figures.channels - self.failed_channels) / self.figures.channels
        return self.load_w * self._share(self._active) * self._brightness / 100.0 * working

    def _advance(self) -> float:
        now = self._clock.now()
        if self._follow_at is not None and now >= self._follow_at and "controller_fault" not in self.faults:
            self.energy_wh += self.power() * max(0.0, self._follow_at - self._last) / 3600.0
            self._last = self._follow_at
            self._active = self._scene
            self._follow_at = None
        self.energy_wh += self.power() * max(0.0, now - self._last) / 3600.0
        self._last = now
        return now

    def set_fault(self, fault: str, value: FaultValue | None) -> None:
        self._advance()  # energy up to now is owed to the state before the fault
        self.faults[fault] = value

    def clear_fault(self, fault: str) -> None:
        now = self._advance()
        self.faults.pop(fault, None)
        if fault == "controller_fault" and self._scene != self._active:
            self._follow_at = now + self._rng.uniform(*SCENE_FOLLOW_S)

    def _jitter(self, spread: float) -> float:
        return self._rng.uniform(-spread, spread) if self._noise else 0.0

    # --- registers, as the datasheet lays them out -------------------------------------------------

    def read_coils(self, address: int, count: int) -> list[bool]:
        raise DeviceException(ExceptionCode.ILLEGAL_FUNCTION)

    def write_coils(self, address: int, values: list[bool]) -> None:
        raise DeviceException(ExceptionCode.ILLEGAL_FUNCTION)

    def read_holding(self, address: int, count: int) -> list[int]:
        _check_range(address, count, HOLDING_COUNT)
        return [self._scene, self._brightness][address : address + count]

    def write_holding(self, address: int, values: list[int]) -> None:
        _check_range(address, len(values), HOLDING_COUNT)
        limits = (SCENE_MAX, BRIGHTNESS_MAX)
        for offset, value in enumerate(values, start=address):
            if value > limits[offset]:
                raise DeviceException(ExceptionCode.ILLEGAL_DATA_VALUE)
        now = self._advance()
        for offset, value in enumerate(values, start=address):
            if offset == 0:
                self._scene = value
                self._follow_at = now + self._rng.uniform(*SCENE_FOLLOW_S)
            else:
                self._brightness = value

    def read_input(self, address: int, count: int) -> list[int]:
        _check_range(address, count, INPUT_COUNT)
        return self.input_registers()[address : address + count]

    def input_registers(self) -> list[int]:
        self._advance()
        voltage = 220.0 + self._jitter(3.0) if self.supply else abs(self._jitter(1.5))
        power = self.power() * (1.0 + self._jitter(0.05))
        energy = int(self.energy_wh) & 0xFFFFFFFF
        failed = self.failed_channels
        status = (
            ("controller_fault" in self.faults) << BIT_CONTROLLER_FAULT
            | (failed > 0) << BIT_CHANNEL_FAULT
            | ("door_open" in self.faults) << BIT_DOOR
        )
        return [
            self._active,  # 0 active_scene
            max(0, min(0xFFFF, round(voltage * 10))),  # 1 voltage, 0.1 V
            max(0, min(0xFFFF, round(power))),  # 2 power, 1 W
            energy >> 16,  # 3-4 energy, Wh, high word first
            energy & 0xFFFF,
            status,  # 5 status bits
            failed,  # 6 failed_channels
        ]

    def truth(self) -> FacadeTruth:
        self._advance()
        return FacadeTruth(
            scene=self._scene,
            brightness=self._brightness,
            active_scene=self._active,
            supply=self.supply,
            failed_channels=self.failed_channels,
            power_w=self.power(),
            energy_wh=self.energy_wh,
            faults=dict(self.faults),
        )

    def set_counters(self, energy_wh: float | None = None, hours: float | None = None) -> None:
        self._advance()
        if energy_wh is not None:
            self.energy_wh = energy_wh


def _check_range(address: int, count: int, size: int) -> None:
    if address < 0 or address + count > size:
        raise DeviceException(ExceptionCode.ILLEGAL_DATA_ADDRESS)

"""The alarm types of design.md section 4: their severities, names for crews, and which are faults.

A detector works on sub-conditions (`lamp_failure/k1`, `relay_failure/bit`, ...); an alarm is per
type and device, active while any of its sub-conditions is. `type_of` maps one to the other.
"""

from __future__ import annotations

from lightctl.model import Severity

BRIDGE_ID = "bridge"  # the device of the alarm for lightctl's own MQTT broker connection

SEVERITY: dict[str, Severity] = {
    "lamp_failure": Severity.MAJOR,
    "control_gear_failure": Severity.MAJOR,
    "day_burner": Severity.MINOR,
    "relay_failure": Severity.MAJOR,
    "dim_mismatch": Severity.MINOR,
    "cycling": Severity.MINOR,
    "voltage_high": Severity.MINOR,
    "voltage_low": Severity.MINOR,
    "power_factor_low": Severity.MINOR,
    "over_temperature": Severity.MAJOR,
    "leakage": Severity.CRITICAL,
    "door_open": Severity.MAJOR,  # critical at night (engine)
    "breaker_tripped": Severity.MAJOR,
    "pole_tilt": Severity.CRITICAL,
    "supply_loss": Severity.MAJOR,
    "cable_theft_suspected": Severity.CRITICAL,
    "comm_loss": Severity.MAJOR,
    "command_failed": Severity.MAJOR,
    "energy_anomaly": Severity.MINOR,
    "calendar_data_missing": Severity.MINOR,
}
ALARM_TYPES: frozenset[str] = frozenset(SEVERITY)

# Raised and cleared by other parts of lightctl through AlarmManager.raise_alarm / clear_alarm.
EXTERNAL_TYPES: frozenset[str] = frozenset({"command_failed", "energy_anomaly", "calendar_data_missing"})

# What makes a device "not intact" for the facility intact rate (设施完好率): a fault of the facility
# itself. Not reachable (comm_loss, counted by the online rate), a command that did not go through,
# an energy deviation and missing calendar data are not facility faults.
FACILITY_FAULTS: frozenset[str] = ALARM_TYPES - {
    "comm_loss",
    "command_failed",
    "energy_anomaly",
    "calendar_data_missing",
}

TYPE_NAMES_ZH: dict[str, str] = {
    "lamp_failure": "灯具故障",
    "control_gear_failure": "驱动/控制器故障",
    "day_burner": "白天亮灯",
    "relay_failure": "继电器/接触器故障",
    "dim_mismatch": "调光异常",
    "cycling": "频繁熄亮",
    "voltage_high": "电压过高",
    "voltage_low": "电压过低",
    "power_factor_low": "功率因数低",
    "over_temperature": "温度过高",
    "leakage": "漏电",
    "door_open": "箱门打开",
    "breaker_tripped": "断路器跳闸",
    "pole_tilt": "灯杆倾斜",
    "supply_loss": "失电",
    "cable_theft_suspected": "疑似电缆被盗",
    "comm_loss": "通信中断",
    "command_failed": "命令失败",
    "energy_anomaly": "能耗异常",
    "calendar_data_missing": "节假日数据缺失",
}
SEVERITY_ZH: dict[Severity, str] = {
    Severity.CRITICAL: "紧急",
    Severity.MAJOR: "重要",
    Severity.MINOR: "一般",
}
SEVERITY_RANK: dict[Severity, int] = {Severity.MINOR: 0, Severity.MAJOR: 1, Severity.CRITICAL: 2}

_TYPE_OF: dict[str, str] = {}


def type_of(key: str) -> str:
    """The alarm type of a sub-condition key (`lamp_failure/k1` -> `lamp_failure`)."""
    found = _TYPE_OF.get(key)
    if found is None:
        found = _TYPE_OF[key] = key.partition("/")[0]
    return found

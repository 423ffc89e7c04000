"""Time-limit policies read from a diagram element's properties (``kefu.sla.*``).

A policy is a duration, the calendar it is counted on, a warning threshold and an escalation chain.
Shipped defaults live here; analysts override them per element in the modeler.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_WARN = 0.8
DEFAULT_ESCALATIONS = "1.0:leader,1.5:manager"
TARGETS = ("leader", "manager")
CALENDARS = ("24x7", "workdays")

_DURATION = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


@dataclass(frozen=True)
class Policy:
    duration_seconds: float
    calendar: str = "24x7"
    warn: float = DEFAULT_WARN
    escalations: tuple[tuple[float, str], ...] = ((1.0, "leader"), (1.5, "manager"))
    due_var: str | None = None


def parse_duration(text: str) -> float:
    """Seconds in an ISO-8601 duration without years or months (``PT2H``, ``P3D``, ``P1DT12H``)."""
    text = (text or "").strip().strip("\"'").upper()
    match = _DURATION.match(text)
    if not match or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"'{text}' is not an ISO-8601 duration such as PT2H or P3D")
    parts = {k: float(v) for k, v in match.groupdict().items() if v}
    seconds = (parts.get("w", 0) * 7 * 86400 + parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600
               + parts.get("m", 0) * 60 + parts.get("s", 0))
    if seconds <= 0:
        raise ValueError("a time limit must be longer than zero")
    return seconds


def parse_escalations(text: str) -> tuple[tuple[float, str], ...]:
    """``"1.0:leader,1.5:manager"`` → ((1.0, 'leader'), (1.5, 'manager'))."""
    chain = []
    for item in (text or "").split(","):
        if not item.strip():
            continue
        fraction, _, target = item.partition(":")
        try:
            value = float(fraction)
        except ValueError as exc:
            raise ValueError(f"escalation '{item.strip()}' must look like 1.0:leader") from exc
        target = target.strip()
        if target not in TARGETS:
            raise ValueError(f"escalation target '{target}' must be one of {', '.join(TARGETS)}")
        if value <= 0:
            raise ValueError("an escalation threshold must be above zero")
        chain.append((value, target))
    if [c[0] for c in chain] != sorted(c[0] for c in chain):
        raise ValueError("escalation thresholds must increase")
    return tuple(chain)


UPGRADED = "kefu.sla.upgraded."  # the stricter variant for upgraded complaints (slas/upgrades.py)


def policy_from_properties(props: dict[str, str], upgraded: bool = False) -> Policy | None:
    """The policy an element declares, or None when it has no ``kefu.sla.duration``. ``upgraded``:
    the element's ``kefu.sla.upgraded.*`` properties, where it declares them, replace the others."""
    if upgraded and props.get(UPGRADED + "duration"):
        props = {**props, **{"kefu.sla." + k[len(UPGRADED):]: v for k, v in props.items() if k.startswith(UPGRADED)}}
    if not props.get("kefu.sla.duration"):
        return None
    calendar = props.get("kefu.sla.calendar", "24x7").strip() or "24x7"
    if calendar not in CALENDARS:
        raise ValueError(f"calendar '{calendar}' must be one of {', '.join(CALENDARS)}")
    warn = float(props.get("kefu.sla.warn", DEFAULT_WARN) or DEFAULT_WARN)
    if not 0 < warn < 1:
        raise ValueError("the warning threshold must be between 0 and 1 (e.g. 0.8)")
    return Policy(duration_seconds=parse_duration(props["kefu.sla.duration"]), calendar=calendar,
                  warn=warn,
                  escalations=parse_escalations(props.get("kefu.sla.escalations", DEFAULT_ESCALATIONS)),
                  due_var=props.get("kefu.sla.due_var") or None)


def check_properties(element_id: str, props: dict[str, str]) -> str | None:
    """Deploy-time check of an element's SLA properties (an engine ``PropertyCheck``)."""
    try:
        policy_from_properties(props)
        policy_from_properties(props, upgraded=True)
    except ValueError as exc:
        return f"time limit: {exc}"
    return None

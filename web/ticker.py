"""One tick of the clock: fire due BPMN timers, then scan SLA clocks. Safe to run concurrently
(every step is guarded by the instance version or the clock's compare-and-set)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from engine.runtime import Engine
from slas.scanner import ScanResult, scan


@dataclass
class TickReport:
    at: datetime
    timers_fired: int
    scan: ScanResult

    def lines(self) -> list[str]:
        out = [f"tick at {self.at.isoformat()}: {self.timers_fired} timer(s) fired, {self.scan}"]
        for esc in self.scan.escalations:
            out.append(f"  escalation L{esc.level} → {esc.target}: instance {esc.instance_id} "
                       f"task {esc.task_id} '{esc.title}' due {esc.due_at.isoformat()}")
        return out


def tick(session: Session, engine: Engine, now: datetime, batch: int = 500) -> TickReport:
    """Run everything due by ``now``; commits per unit of work."""
    fired = 0
    while True:
        count = engine.fire_due_timers(session, now, limit=batch)
        fired += count
        if count < batch:
            break
    result = scan(session, now, batch=batch)
    session.commit()
    return TickReport(now, fired, result)

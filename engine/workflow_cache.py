"""Live workflows kept between steps, keyed by instance id and row version.

A cached workflow is only valid for the exact ``lock_version`` it was saved with; it is taken out
of the cache while a step mutates it and put back only when that step's transaction commits, so a
rolled-back step can never leave a half-advanced workflow behind.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from sqlalchemy.orm import Session

from .unit_of_work import after_commit


class WorkflowCache:
    def __init__(self, capacity: int = 1000) -> None:
        self.capacity = capacity
        self._items: OrderedDict[int, tuple[int, BpmnWorkflow]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def take(self, instance_id: int, version: int) -> BpmnWorkflow | None:
        """Remove and return the workflow of this instance if cached at exactly this version."""
        with self._lock:
            entry = self._items.pop(instance_id, None)
        if entry is not None and entry[0] == version:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, instance_id: int, version: int, workflow: BpmnWorkflow) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._items[instance_id] = (version, workflow)
            self._items.move_to_end(instance_id)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def put_after_commit(self, session: Session, instance_id: int, version: int,
                         workflow: BpmnWorkflow) -> None:
        """Cache this workflow once (and only if) the session's transaction commits."""
        after_commit(session, lambda: self.put(instance_id, version, workflow),
                     key=("workflow", id(self), instance_id))

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


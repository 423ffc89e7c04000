"""Guard against SpiffWorkflow's silent stop on deep task trees.

SpiffWorkflow 3.2 walks a workflow's task tree with an iterator that stops at depth 1000
(``SpiffWorkflow/util/task.py``, ``max_depth``). A loop drawn as a gateway back-edge adds a few
levels per pass, so past ~300 passes the tasks that should run next are not found: the workflow
neither advances nor errs, and ``is_completed()`` answers true although no end event was reached.
Kefu never records such a case as completed: the step fails with :class:`TreeTooDeep` instead,
and the case shows as an error to administrators.
"""

from __future__ import annotations

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState


class TreeTooDeep(Exception):
    """Tasks exist that SpiffWorkflow's iterator cannot reach (see module doc)."""


def unreachable_tasks(workflow: BpmnWorkflow) -> int:
    """How many unfinished tasks of the top-level workflow the iterator does not reach."""
    every = {t.id for t in workflow.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)}
    if not every:
        return 0
    reached = {t.id for t in workflow.get_tasks(state=TaskState.NOT_FINISHED_MASK)}
    return len(every - reached)


def check_tree(workflow: BpmnWorkflow) -> None:
    """Raise :class:`TreeTooDeep` when part of the workflow is out of the iterator's reach."""
    lost = unreachable_tasks(workflow)
    if lost:
        raise TreeTooDeep(
            f"{lost} task(s) lie beyond the depth SpiffWorkflow follows (a loop of some 300 passes or "
            "more): the case cannot advance. Model unbounded repetition as one case per round, a "
            "cycle timer or a multi-instance task.")

"""Keep a long-running workflow's task tree shallow: finished history is cut off as the case runs.

SpiffWorkflow 3.2 keeps every task a workflow ever ran in one tree, and a loop drawn as a gateway
back-edge adds a few levels per pass. Its task iterator stops at depth 1000, so past ~300 passes
the next tasks are not found and the case stalls (``engine/tree_check.py`` turns that into an
error); long before that, every step pays for scanning and serializing the whole history.

What the workflow still needs lies below the deepest task that is an ancestor of every unfinished
task: everything before it is finished, its data has flowed forward into the tasks below, and no
gateway, boundary event or join can look above it. So that task is hung directly under the root
and the finished tasks above it are dropped, between engine steps. The case's history stays in
Kefu's audit trail and inbox rows, not in the tree.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

PRUNE_DEPTH = 60  # prune once the live part hangs this deep (a few passes of a typical loop)


def run_engine_steps(workflow: BpmnWorkflow) -> None:
    """``workflow.do_engine_steps()``, pruning finished history between waves of engine tasks so
    that a script loop of any length never outgrows the iterator (SpiffWorkflow's own loop is the
    private ``_do_engine_steps``, pinned with SpiffWorkflow==3.2.0)."""
    prune(workflow)
    while workflow._do_engine_steps() > 0:
        prune(workflow)
    workflow.refresh_timers()
    prune(workflow)


def prune(workflow: BpmnWorkflow, depth: int | None = None) -> int:
    """Cut the finished history above the live part of the tree (once it hangs ``depth`` levels
    deep, by default :data:`PRUNE_DEPTH`); returns how many tasks went."""
    depth = PRUNE_DEPTH if depth is None else depth
    root = workflow.task_tree
    live = [t for t in workflow.tasks.values() if not t.has_state(TaskState.FINISHED_MASK)]
    if not live or _depth(live[0]) < depth:
        return 0
    keep = _common_ancestor(live)
    if keep is None or keep is root or keep.parent is root:
        return 0
    old_parent = keep.parent
    root_children = [c for c in root._children if c != _chain_child(root, keep)]
    keep.parent = root
    root._children = [*root_children, keep.id]
    old_parent._children = [c for c in old_parent._children if c != keep.id]
    kept = _subtree_ids(root)
    gone = [task_id for task_id in workflow.tasks if task_id not in kept]
    for task_id in gone:
        del workflow.tasks[task_id]
    for task_id in [k for k in getattr(workflow, "subprocesses", {}) if k not in kept]:
        del workflow.subprocesses[task_id]  # finished call activities and subprocesses
    if workflow.last_task is not None and workflow.last_task.id not in kept:
        workflow.last_task = keep
    return len(gone)


def was_pruned(workflow: BpmnWorkflow) -> bool:
    """Whether finished history was cut from this workflow's tree (the root's child is then a task
    from the middle of the process, not what follows the start)."""
    root = workflow.task_tree
    return any(child.task_spec not in root.task_spec.outputs for child in root.children)


def _depth(task: Any) -> int:
    depth, node = 0, task
    while node.parent is not None:
        depth, node = depth + 1, node.parent
    return depth


def _chain(task: Any) -> list[Any]:
    """``task``'s ancestors from the root down to ``task``."""
    chain = [task]
    while chain[-1].parent is not None:
        chain.append(chain[-1].parent)
    return chain[::-1]


def _common_ancestor(tasks: list[Any]) -> Any:
    """The deepest task that is ``tasks``' common ancestor, every one of its ancestors finished."""
    chains = [_chain(t) for t in tasks]
    common = None
    for level in zip(*chains, strict=False):
        first = level[0]
        if any(t.id != first.id for t in level[1:]):
            break
        common = first
    # The kept task may itself be live (e.g. the one task waiting): keep its parent instead then,
    # so that nothing live is ever re-hung.
    while common is not None and not common.has_state(TaskState.FINISHED_MASK):
        common = common.parent
    return common


def _chain_child(root: Any, task: Any) -> Any:
    """The id of ``root``'s child on the way down to ``task``."""
    chain = _chain(task)
    return chain[1].id if len(chain) > 1 else None


def _subtree_ids(root: Any) -> set[Any]:
    found, stack = set(), [root]
    while stack:
        node = stack.pop()
        found.add(node.id)
        stack.extend(node.children)
    return found

"""Workflow state to JSON and back, without the spec.

The spec of a definition version is parsed once and shared by every instance of that version, so
an instance row holds only its state (the task tree and data): a third of the stock serialization
and no spec to restore on every load.
"""

from __future__ import annotations

import json
from copy import deepcopy
from typing import Any

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import (
    BpmnWorkflowConverter,
    WorkflowConverter,
)
from SpiffWorkflow.bpmn.specs import BpmnProcessSpec
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import ServiceTaskConverter

from .service_tasks import ConnectorServiceTask

STATE_FORMAT = "kefu-state-1"


class SpeclessWorkflowConverter(BpmnWorkflowConverter):
    """Like Spiff's converter, but the specs are supplied by the host instead of serialized."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        dct = WorkflowConverter.to_dict(self, workflow)
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], spec: BpmnProcessSpec | None = None,
                  subprocess_specs: dict[str, BpmnProcessSpec] | None = None) -> BpmnWorkflow:
        if spec is None:
            return super().from_dict(dct)
        dct = dict(dct)
        dct["spec"] = spec
        dct["subprocess_specs"] = subprocess_specs or {}
        workflow = self.target_class(spec, subprocess_specs or {}, deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], _uuid, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(_uuid(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return workflow


def _uuid(value: str):
    from uuid import UUID

    return UUID(value)


def _make_serializer() -> BpmnWorkflowSerializer:
    config = deepcopy(SPIFF_CONFIG)
    config[BpmnWorkflow] = SpeclessWorkflowConverter
    config[ConnectorServiceTask] = ServiceTaskConverter
    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(config))


SERIALIZER = _make_serializer()


def dump_specs(spec: BpmnProcessSpec, subprocess_specs: dict[str, BpmnProcessSpec]) -> str:
    """Serialize a parsed top-level spec and its subprocess specs (stored once per version)."""
    registry = SERIALIZER.registry
    return json.dumps({
        "spec": registry.convert(spec),
        "subprocess_specs": {k: registry.convert(v) for k, v in subprocess_specs.items()},
    })


def load_specs(text: str) -> tuple[BpmnProcessSpec, dict[str, BpmnProcessSpec]]:
    dct = json.loads(text)
    registry = SERIALIZER.registry
    return (registry.restore(dct["spec"]),
            {k: registry.restore(v) for k, v in dct["subprocess_specs"].items()})


def dump_state(workflow: BpmnWorkflow) -> str:
    """The workflow's state as JSON (no spec)."""
    text = SERIALIZER.serialize_json(workflow)
    return text


def load_state(text: str, spec: BpmnProcessSpec,
               subprocess_specs: dict[str, BpmnProcessSpec]) -> BpmnWorkflow:
    dct = json.loads(text)
    SERIALIZER.migrate(dct)
    return SERIALIZER.from_dict(dct, spec=spec, subprocess_specs=subprocess_specs)

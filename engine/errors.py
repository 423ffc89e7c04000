"""Domain errors: a code and a message, never an HTTP status (``web`` maps them in one place)."""

from __future__ import annotations


class KefuError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.fields = fields or {}


class NotFound(KefuError):
    code = "not_found"


class Forbidden(KefuError):
    code = "forbidden"


class Conflict(KefuError):
    """The object changed under us (optimistic lock) or is held by someone else."""

    code = "conflict"


class ValidationFailed(KefuError):
    code = "validation_failed"


class DefinitionInvalid(KefuError):
    """A BPMN definition failed validation; ``errors`` lists ``{element_id, message}``."""

    code = "definition_invalid"

    def __init__(self, errors: list[dict[str, str | None]]) -> None:
        super().__init__("; ".join(str(e["message"]) for e in errors) or "invalid definition")
        self.errors = errors


class InstanceFailed(KefuError):
    """The workflow raised while running (a script or condition failed)."""

    code = "instance_error"


class PeerUnavailable(KefuError):
    """A system the step needs at once (e.g. billing, for a password check) did not answer; nothing
    was changed and the user may try again."""

    code = "peer_unavailable"

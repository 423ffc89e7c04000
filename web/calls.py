"""Agents' calls in the browser: the screen-pop stream and the demo's simulated inbound call."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("calls", __name__)

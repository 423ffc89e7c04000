"""Cases in words: the one place that turns audit events into sentences and decides which case
data a person sees (form fields with their labels, a few labelled results of the process's own
steps; never internal keys, dicts or lists)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from flask import current_app
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from engine.models import AuditEvent
from processes import national

from .admin_event_text import admin_sentence
from .sms_words import recipient, sms_facts

# What the diagrams' own steps write into a case that people should see (form fields come with
# their labels from the forms' schemas).
RESULT_LABELS = {
    "satisfaction_source": _l("Satisfaction given by"),
    "customer_comment": _l("Customer's comment"),
    "callback_outcome": _l("Callback outcome"),
    "billing_reason": _l("Billing's reason"),
}
RESULT_CHOICES = {
    "satisfaction_source": {"sms": _l("SMS reply"), "phone": _l("Phone"), "visit": _l("Return visit"),
                            "return_visit": _l("Return visit")},
}
_HEADLINES = {
    "started": _l("Recorded"), "task_opened": _l("Step opened"), "task_completed": _l("Step done"),
    "task_claimed": _l("Claimed"), "task_unclaimed": _l("Returned to group"), "task_assigned": _l("Assigned"),
    "completed": _l("Closed"), "suspended": _l("Suspended"), "resumed": _l("Resumed"),
    "sla_paused": _l("Time limits paused"), "sla_warning": _l("Near its time limit"), "escalated": _l("Escalated"),
    "timer_fired": _l("Timer fired"), "error": _l("Error"), "deployed": _l("Deployed"), "call_linked": _l("Call"),
    "migrated": _l("Moved to a newer process version"), "callback_requested": _l("Callback booked"),
    "callback_attempt": _l("Callback attempt"), "return_visit": _l("Return visit booked"),
    "incident_retried": _l("Retried by an administrator"), "file_acknowledged": _l("File confirmed by the centre"),
    "dunning_round_opened": _l("Dunning round opened"), "task_urged": _l("Urged"),
    "roaming_transferred": _l("Transferred to the home province"),
    "roaming_origin": _l("Transferred from a complaint"),
    "internal_note": _l("Internal note (not for the customer)"), "attachment_added": _l("File attached"),
    "escalation_acknowledged": _l("Alert acknowledged by a supervisor"),
    "transferred_to_city": _l("Transferred to the city's remote seat"),
    "national_escalated": _l("Escalated to the national center"),
    "national_answered": _l("Answer from the national center"),
    "national_received": _l("Escalation received from a province"),
    "national_dispatch_received": _l("Dispatch received from the national center"),
    "task_auto_assigned": _l("Assigned by the system"),
    "upgraded": _l("Upgraded complaint"),
}
# A dispatch sent (the transfer case) and a complaint passed on to one (processes/roaming.py).
_DISPATCH_KINDS = ("roaming_sent", "roaming_transferred")
_MESSAGES = {"sms_reply": _l("The customer replied by SMS"), "dunning_paid": _l("Payment received"),
             "return_visit": _l("The return visit's result came back"),
             "national_escalation": _l("Waiting for the national center's answer"),
             "national_answer": _l("The national center's answer came back")}
_PEER_STATES = {
    "delivered": _l("SMS delivered to the handset"), "undeliverable": _l("SMS could not be delivered"),
    "expired": _l("SMS expired before delivery"), "rejected": _l("SMS rejected by the network"),
    "deleted": _l("SMS deleted by the SMS centre"), "accepted": _l("SMS accepted by the SMS centre"),
}
# Peers' refusals in words (the technical text stays in the incident for administrators).
_REASONS = [
    (re.compile(r"is not a phone number"), _l("the number is not a valid phone number")),
    (re.compile(r"not configured"), _l("the connection to this system is not configured")),
    (re.compile(r"cannot connect|Connection refused|unreachable|timed out|no submit_sm_resp", re.IGNORECASE),
     _l("the other system did not answer")),
    (re.compile(r"ESME_R\w+"), _l("the SMS centre refused the message")),
    (re.compile(r"template", re.IGNORECASE), _l("the SMS text could not be made from its template")),
    (re.compile(r"\.ok within"), _l("the centre did not confirm the file in time")),
    (re.compile(r"outcome unknown|may or may not have happened", re.IGNORECASE),
     _l("it is not known whether the call reached the other system")),
]


@dataclass(frozen=True)
class Sentence:
    title: str
    detail: str


def event_sentence(event: AuditEvent) -> Sentence:
    """An audit event as a headline and a detail in the user's language; an unknown kind still
    reads as a sentence (its message), never as a bare code."""
    kind, message = event.kind, event.message or ""
    admin = admin_sentence(event)  # users, groups, roles, calendars: web/admin_event_text.py
    if admin is not None:
        return Sentence(*admin)
    if kind == "job_done":
        facts = sms_facts(event.data) if message.strip() == "sms.send" else None
        if facts is not None and facts.title:  # which text, to whom (web/sms_words.py)
            return Sentence(_("%(what)s “%(title)s” to %(whom)s: done", what=operation_title(message),
                              title=facts.title, whom=recipient(facts)), "")
        return Sentence(_("%(what)s: done", what=operation_title(message)), "")
    if kind == "job_retry":
        what, _sep, reason = message.partition(": ")
        return Sentence(_("%(what)s did not succeed; trying again", what=operation_title(what)), reason_in_words(reason))
    if kind == "incident":
        what, _sep, reason = message.partition(": ")
        return Sentence(_("%(what)s failed: an administrator is looking into it", what=operation_title(what)),
                        reason_in_words(reason))
    if kind == "escalated" and event.data:  # the scanner's message is "L1 → leader: <step>"
        target = _("the group leader") if event.data.get("target") == "leader" else _("the managers")
        return Sentence(str(_HEADLINES[kind]), _("level %(level)s, %(target)s alerted: %(step)s",
                                                  level=event.data.get("level", ""), target=target,
                                                  step=message.partition(": ")[2] or message))
    if kind == "message_received":
        return Sentence(str(_MESSAGES.get(message, _l("A message reached the case"))), "")
    if kind == "incident_confirmed":
        return Sentence(_("%(what)s: confirmed by an administrator with the other system", what=operation_title(message)), "")
    if kind == "peer_query":  # the message is the connector's answer, in Chinese
        return Sentence(_("An administrator asked the other system about a call"), message)
    peer, _sep, state = kind.partition("_")
    if peer == "smpp" and state:
        words = _PEER_STATES.get(state)
        facts = sms_facts(event.data)
        if facts is not None and facts.staff:  # a text to a member of staff, not the customer's handset
            words = _l("SMS delivered") if state == "delivered" else words
        detail = _("“%(title)s” to %(whom)s", title=facts.title, whom=recipient(facts)) if facts and facts.title else ""
        return Sentence(str(words) if words else _("SMS status: %(state)s", state=state), detail)
    if kind in _DISPATCH_KINDS and _at_centre():  # the national centre's dispatch down (下发至省公司)
        return Sentence(_("Dispatched to the province"), message)
    if kind in _HEADLINES:
        return Sentence(str(_HEADLINES[kind]), message)
    return Sentence(message or _("Recorded event"), "")


def _at_centre() -> bool:
    """Whether this deployment is the national centre (processes/national.py, is_centre)."""
    exchange = current_app.extensions.get("kefu_roaming")
    return exchange is not None and national.is_centre(exchange.partners)


def reason_in_words(reason: str) -> str:
    """A peer's or connector's error as a person reads it."""
    for pattern, words in _REASONS:
        if pattern.search(reason or ""):
            return str(words)
    return _("the other system reported an error") if reason else ""


def visible_data(catalog: dict[str, tuple[str, dict[str, str]]], data: dict[str, Any]
                 ) -> list[tuple[str, str, Any]]:
    """``(name, label, value)`` of the case data a person sees: form fields and labelled results,
    plain values only, in the data's order."""
    shown = []
    for name, value in data.items():
        if value in (None, "") or isinstance(value, dict | list | tuple | set):
            continue
        if name in catalog:
            shown.append((name, catalog[name][0], value))
        elif name in RESULT_LABELS:
            choices = RESULT_CHOICES.get(name, {})
            shown.append((name, str(RESULT_LABELS[name]), str(choices.get(str(value), value))))
    return shown


def operation_title(name: str) -> str:
    """An outbox operation's title (e.g. 发送短信) from the installed connectors."""
    operation = current_app.extensions["kefu_connectors"].operations.get(name.strip())
    return getattr(operation, "title", None) or _("A call to another system")

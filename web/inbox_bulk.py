"""The inbox's helpers: bulk claim/assign (each step its own transaction, audited by the engine's
verbs like the single actions, refusals kept per row in words), the filter choices, the cases'
priority/VIP facts and the user's saved views."""

from __future__ import annotations

from dataclasses import dataclass

from flask_babel import gettext as _
from flask_login import current_user
from sqlalchemy import select

from engine import definitions
from engine.access import allowed
from engine.clock import utcnow
from engine.errors import KefuError
from engine.models import HumanTask
from engine.people import Group, User
from processes import saved_views
from processes.desk_search import CaseIndex

from .errors import STATUS, page_message
from .extensions import db
from .views_helpers import engine, locale

MAX_BULK = 50  # one inbox page


@dataclass(frozen=True)
class Refusal:
    reference: str
    title: str
    reason: str


def run(action: str, task_ids: list[int], assignee_id: int | None) -> tuple[int, list[Refusal]]:
    """Claim (or assign to ``assignee_id``) each step; (how many done, the refused ones)."""
    eng = engine()
    assignee = db.session.get(User, assignee_id) if action == "assign" and assignee_id else None
    if action == "assign" and assignee is None:
        return 0, [Refusal("", "", _("Choose a member of the group."))]
    done, refused = 0, []
    for task_id in list(dict.fromkeys(task_ids))[:MAX_BULK]:
        task = db.session.get(HumanTask, task_id)
        label = (task.instance.reference or "", task.title) if task is not None else ("", f"#{task_id}")
        try:
            if assignee is not None:
                eng.assign(db.session, task_id, assignee, current_user, utcnow())
            else:
                eng.claim(db.session, task_id, current_user, utcnow())
            db.session.commit()  # one step, one transaction: a refusal elsewhere keeps this one
            done += 1
        except KefuError as exc:
            db.session.rollback()
            headline, reason = page_message(STATUS.get(type(exc), 400), exc.message)
            refused.append(Refusal(*label, reason or headline))
    return done, refused


def led_groups(user: User) -> list[Group]:
    """The groups ``user`` leads (every group for an admin): whose steps they may assign."""
    every = list(db.session.scalars(select(Group).order_by(Group.name)))
    return every if allowed(user, "administer") else [g for g in every if user.id in g.leader_ids]


def members_of(groups: list[Group]) -> list[User]:
    members = {u.id: u for g in groups for u in g.members if u.active}
    return sorted(members.values(), key=lambda u: u.username)


def group_label(group: Group) -> str:
    return group.name_en if locale().startswith("en") and group.name_en else group.name


def step_choices() -> list[tuple[str, str]]:
    """Every user task of the deployed processes' newest versions, (id, name) — read from the
    cached diagrams, not from the (possibly huge) table of open steps."""
    eng, seen = engine(), {}
    for definition in definitions.latest_versions(db.session):
        spec, subprocesses, _forms = eng.specs.get(db.session, definition.id)
        for process in (spec, *subprocesses.values()):
            for task_spec in process.task_specs.values():
                if definitions.is_user_task(task_spec):
                    seen.setdefault(task_spec.bpmn_id, task_spec.bpmn_name or task_spec.bpmn_id)
    return sorted(seen.items(), key=lambda item: item[1])


def inbox_choices(user: User) -> dict:
    """What the inbox's filter bar offers: the steps, the user's groups, their members."""
    groups = sorted(user.groups, key=lambda g: g.name)
    return {"steps": step_choices(), "groups": [(g.id, group_label(g)) for g in groups],
            "holders": [(u.id, u.display_name) for u in members_of(groups)]}


def case_choices() -> dict:
    """The case list's filter choices: the steps, every group, the groups' members."""
    groups = list(db.session.scalars(select(Group).order_by(Group.name)))
    return {"steps": step_choices(), "groups": [(g.id, group_label(g)) for g in groups],
            "holders": [(u.id, u.display_name) for u in members_of(groups)]}


def case_facts(instance_ids: list[int]) -> dict[int, CaseIndex]:
    """Priority, VIP and name of the listed cases, by case id."""
    if not instance_ids:
        return {}
    return {row.instance_id: row for row in db.session.scalars(
        select(CaseIndex).where(CaseIndex.instance_id.in_(set(instance_ids))))}


def my_views(page: str) -> list[saved_views.SavedView]:
    return saved_views.views_of(db.session, current_user.id, page)


def back_url(value: str | None, default: str) -> str:
    """Where a form posted from a list returns: a local path only (never another site)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return default

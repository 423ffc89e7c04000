"""Users, groups and roles: who may see and act on which task.

Lanes of a diagram name groups (by code or Chinese name); a user belongs to groups and holds roles.
Passwords are stored as hashes only (werkzeug's scrypt/pbkdf2).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, Table, bindparam, or_, select
from sqlalchemy.orm import Mapped, Session, joinedload, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .db import Base

# werkzeug's default (scrypt) costs ~0.16 s a hash here: right for people, slow for test fixtures.
PASSWORD_METHOD = "scrypt"

ROLES = ("agent", "leader", "handler", "manager", "analyst", "admin")
# How people read the roles (Chinese, English), for the admin pages.
ROLE_LABELS: dict[str, tuple[str, str]] = {
    "agent": ("坐席", "Agent"),
    "leader": ("班长", "Group leader"),
    "handler": ("处理人员", "Handler"),
    "manager": ("管理人员", "Manager"),
    "analyst": ("流程分析师", "Process analyst"),
    "admin": ("系统管理员", "Administrator"),
}

# The three organisational levels of a group (全国中心 / 省中心 / 地市中心) and how its tasks are
# handed out.
GROUP_LEVELS = ("national", "province", "city")
ASSIGNMENT_MODES = ("manual", "round_robin", "least_loaded")

user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True),
)

# A group's leaders besides its first one: ``Group.leader_id`` stays the first leader (the one
# escalations and leader-assigned steps go to), this table holds the others.
group_leaders = Table(
    "group_leaders",
    Base.metadata,
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    name_en: Mapped[str] = mapped_column(String(80), default="")
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))
    level: Mapped[str] = mapped_column(String(16), default="province", server_default="province")
    city: Mapped[str | None] = mapped_column(String(40))
    assignment: Mapped[str] = mapped_column(String(16), default="manual", server_default="manual")

    members: Mapped[list[User]] = relationship(secondary=user_groups, back_populates="groups")
    leader: Mapped[User | None] = relationship(foreign_keys=[leader_id])
    other_leaders: Mapped[list[User]] = relationship(secondary=group_leaders, lazy="selectin",
                                                     order_by="User.username")

    @property
    def leaders(self) -> list[User]:
        """Every leader, the first one (``leader_id``) first."""
        first = [self.leader] if self.leader is not None else []
        return first + [u for u in self.other_leaders if u.id != self.leader_id]

    @property
    def leader_ids(self) -> set[int]:
        return {u.id for u in self.other_leaders} | ({self.leader_id} if self.leader_id else set())

    def set_leaders(self, users: list[User]) -> None:
        """The first user becomes ``leader``; the others join ``other_leaders``."""
        self.leader = users[0] if users else None
        self.leader_id = users[0].id if users else None
        self.other_leaders = [u for u in users[1:] if u is not users[0]]


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(40), unique=True)
    display_name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(256))
    roles: Mapped[str] = mapped_column(String(200), default="agent")
    phone: Mapped[str | None] = mapped_column(String(32))
    extension: Mapped[str | None] = mapped_column(String(16))
    locale: Mapped[str | None] = mapped_column(String(10))
    active: Mapped[bool] = mapped_column(default=True)
    # Bumped to revoke every bearer token (new password, API logout, deactivation) and, with a new
    # password or deactivation, every browser session: both carry the version they were issued under.
    token_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime | None]

    groups: Mapped[list[Group]] = relationship(
        secondary=user_groups, back_populates="members", lazy="selectin"
    )

    # The four members a session library (Flask-Login) expects of a user object.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        return self.active

    def get_id(self) -> str:
        """What a browser session keeps: the id and the token version (a new password or a
        deactivation ends every session issued before it, also in another browser)."""
        return f"{self.id}.{self.token_version or 1}"

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)
        self.revoke_tokens()

    def revoke_tokens(self) -> None:
        """Every bearer token issued so far stops working."""
        self.token_version = (self.token_version or 1) + 1

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(r for r in self.roles.split(",") if r)

    def has_role(self, *roles: str) -> bool:
        return bool(self.role_set.intersection(roles)) or "admin" in self.role_set

    @property
    def group_ids(self) -> set[int]:
        return {g.id for g in self.groups}


def find_group(session: Session, label: str) -> Group | None:
    """The group a lane or variable names, by code or by display name."""
    label = label.strip()
    return session.scalars(
        select(Group).where(or_(Group.code == label, Group.name == label, Group.name_en == label))
    ).first()


class GroupIndex:
    """Group ids by code and display names, read once and again only when a label is unknown.

    Lanes and variables name groups on every step; groups change rarely (an administrator's
    edit calls :meth:`forget`), so a step need not query for them.
    """

    def __init__(self) -> None:
        self._ids: dict[str, int] = {}

    def find(self, session: Session, label: str | None) -> int | None:
        if not label:
            return None
        label = label.strip()
        if label not in self._ids:
            rows = session.execute(select(Group.id, Group.code, Group.name, Group.name_en))
            self._ids = {k: gid for gid, *labels in rows for k in labels if k}
        return self._ids.get(label)

    def forget(self) -> None:
        self._ids = {}


def members_among(session: Session, group_id: int, user_ids: list[int]) -> set[int]:
    """Which of these users are active members of the group (one query)."""
    return set(session.scalars(_MEMBERS_AMONG, {"group_id": group_id, "user_ids": list(user_ids)}))


# Built once (a step asks it when it opens a task): compiled once, reused.
_MEMBERS_AMONG = (select(user_groups.c.user_id).join(User, User.id == user_groups.c.user_id)
                  .where(user_groups.c.group_id == bindparam("group_id"),
                         user_groups.c.user_id.in_(bindparam("user_ids", expanding=True)), User.active))


def led_group_ids(session: Session, user_id: int) -> set[int]:
    """The groups a user leads (as first leader or as one of the others)."""
    first = session.scalars(select(Group.id).where(Group.leader_id == user_id))
    others = session.scalars(select(group_leaders.c.group_id).where(group_leaders.c.user_id == user_id))
    return set(first) | set(others)


def load_user(session: Session, user_id: int) -> User | None:
    """The user by id with their groups, in one statement: what a request loads for its signed-in
    user (every permission and inbox check reads the groups)."""
    return session.get(User, user_id, options=_WITH_GROUPS)


_WITH_GROUPS = (joinedload(User.groups),)


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def managers(session: Session) -> list[User]:
    """Users holding the manager role (level-2 escalations go to them)."""
    users = session.scalars(select(User).where(User.roles.contains("manager"), User.active))
    return [u for u in users if "manager" in u.role_set]

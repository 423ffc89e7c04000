"""Users, groups and roles: who may see and act on which task.

Lanes of a diagram name groups (by code or Chinese name); a user belongs to groups and holds roles.
Passwords are stored as hashes only (werkzeug's scrypt/pbkdf2).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, ForeignKey, Integer, String, Table, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from .db import Base

# werkzeug's default (scrypt) costs ~0.16 s a hash here: right for people, slow for test fixtures.
PASSWORD_METHOD = "scrypt"

ROLES = ("agent", "leader", "handler", "manager", "analyst", "admin")

user_groups = Table(
    "user_groups",
    Base.metadata,
    Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("group_id", ForeignKey("groups.id", ondelete="CASCADE"), primary_key=True, index=True),
)


class Group(Base):
    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    name_en: Mapped[str] = mapped_column(String(80), default="")
    leader_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", use_alter=True))

    members: Mapped[list[User]] = relationship(secondary=user_groups, back_populates="groups")
    leader: Mapped[User | None] = relationship(foreign_keys=[leader_id])


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
        return str(self.id)

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password, method=PASSWORD_METHOD)

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


def user_by_name(session: Session, username: str) -> User | None:
    return session.scalars(select(User).where(User.username == username)).first()


def managers(session: Session) -> list[User]:
    """Users holding the manager role (level-2 escalations go to them)."""
    users = session.scalars(select(User).where(User.roles.contains("manager"), User.active))
    return [u for u in users if "manager" in u.role_set]

"""Saved views (我的视图): a user's named filter sets of the inbox or the case list.

A view is the page's query string as the user left it (filters, sorting, scope); opening it
replays that query string. Names are unique per user and page.
"""

from __future__ import annotations

from datetime import datetime
from urllib.parse import parse_qsl, urlencode

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.db import Base
from engine.errors import NotFound, ValidationFailed

PAGES = ("inbox", "cases")
MAX_VIEWS = 30          # per user and page: a sidebar, not a database
NAME_SIZE = 40
QUERY_SIZE = 1000
IGNORED = frozenset({"page", "csrf_token", "view"})  # not part of a filter set


class SavedView(Base):
    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("user_id", "page", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    page: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(NAME_SIZE))
    query: Mapped[str] = mapped_column(String(QUERY_SIZE), default="")
    created_at: Mapped[datetime]


def clean_query(query: str) -> str:
    """The filter part of a query string (no page number, no empty values), in a stable order."""
    pairs = [(k, v) for k, v in parse_qsl(query, keep_blank_values=False) if k not in IGNORED and v]
    return urlencode(sorted(pairs))


def views_of(session: Session, user_id: int, page: str) -> list[SavedView]:
    return list(session.scalars(select(SavedView).where(SavedView.user_id == user_id, SavedView.page == page)
                                .order_by(SavedView.name)))


def save(session: Session, user_id: int, page: str, name: str, query: str, now: datetime) -> SavedView:
    """Save (or overwrite, by name) a view; in the caller's transaction."""
    name = (name or "").strip()
    if page not in PAGES:
        raise ValidationFailed("unknown page", {"page": "invalid"})
    if not name or len(name) > NAME_SIZE:
        raise ValidationFailed("a view needs a name of at most 40 characters", {"name": "required"})
    query = clean_query(query)
    if len(query) > QUERY_SIZE:
        raise ValidationFailed("the filter set is too long to save", {"query": "maxLength"})
    existing = session.scalar(select(SavedView).where(SavedView.user_id == user_id, SavedView.page == page,
                                                      SavedView.name == name))
    if existing is not None:
        existing.query = query
        return existing
    if len(views_of(session, user_id, page)) >= MAX_VIEWS:
        raise ValidationFailed("too many saved views; delete one first", {"name": "too_many"})
    view = SavedView(user_id=user_id, page=page, name=name, query=query, created_at=now)
    session.add(view)
    return view


def delete(session: Session, user_id: int, view_id: int) -> SavedView:
    """Delete one of the user's views (another user's is not found)."""
    view = session.get(SavedView, view_id)
    if view is None or view.user_id != user_id:
        raise NotFound(f"view {view_id} not found")
    session.delete(view)
    return view

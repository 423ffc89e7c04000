"""Flask extensions, created unbound and bound inside ``create_app``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from flask_babel import Babel
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy.orm import Session

from engine.db import Base
from engine.unit_of_work import Sessions

db = SQLAlchemy(model_class=Base)
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
migrate = Migrate()


def app_sessions(app: Flask) -> Sessions:
    """Units of work of their own for code on other threads (workers, PBX events): an app context
    and its session, rolled back if not committed and removed at the end."""

    @contextmanager
    def scope() -> Iterator[Session]:
        with app.app_context():
            try:
                yield db.session
            except BaseException:
                db.session.rollback()
                raise
            finally:
                db.session.remove()

    return scope

"""The Alembic migrations build exactly the schema the models describe."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from engine.db import Base


def test_upgrade_matches_models(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    from flask_migrate import upgrade

    from web import create_app
    from web.extensions import db

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url})
    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)
        with db.engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
            catalog = ("SELECT name FROM sqlite_master WHERE tbl_name = 'human_tasks'"
                       if conn.dialect.name == "sqlite"
                       else "SELECT indexname FROM pg_indexes WHERE tablename = 'human_tasks'")
            indexes = set(conn.exec_driver_sql(catalog).scalars())
        db.engine.dispose()
    assert diff == []
    # Alembic cannot compare expression indexes; check the inbox's by name.
    assert {"ix_human_tasks_group_queue", "ix_human_tasks_assignee_queue"} <= indexes

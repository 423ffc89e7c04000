"""Shared fixtures: a fresh app and database per test (SQLite by default; PostgreSQL when
KEFU_DATABASE_URL is set, as in CI's second run), the demo accounts, and API helpers."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine

from engine.database import engine_options

# The loopback protocol peers (SMSC, PBX) are fixtures every test module may use.
pytest_plugins = ["tests.peers.smsc", "tests.peers.ami_peer"]

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)  # Monday 09:00 in Beijing


@pytest.fixture(autouse=True)
def _cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fixtures create a dozen accounts: hash their passwords cheaply (production keeps scrypt)."""
    import engine.people

    monkeypatch.setattr(engine.people, "PASSWORD_METHOD", "pbkdf2:sha256:1000")


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """A database with no tables: a new SQLite file, or the CI PostgreSQL emptied."""
    url = os.environ.get("KEFU_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'kefu.db'}"
        return
    engine = create_engine(url, **engine_options(url))
    with engine.begin() as conn:  # whatever the last test left (tables, Alembic's version row)
        conn.exec_driver_sql("DROP SCHEMA public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    engine.dispose()
    yield url


@pytest.fixture
def app(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("KEFU_DATABASE_URL", raising=False)
    from web import create_app
    from web.demo import create_accounts
    from web.extensions import db

    # The billing interim database: its own SQLite file, or CI's PostgreSQL (KEFU_TEST_BILLING_URL).
    billing_url = os.environ.get("KEFU_TEST_BILLING_URL") or f"sqlite:///{tmp_path / 'billing.db'}"
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": db_url, "WTF_CSRF_ENABLED": False,
                      "KEFU_BILLING_URL": billing_url, "KEFU_BILLING_DEMO": True})
    with app.app_context():
        db.create_all()
        create_accounts(db.session, T0)
        app.extensions["kefu_engine"].deploy_directory(db.session, ROOT / "bpmn", now=T0)
        db.session.commit()
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def store(db_url: str) -> Iterator[tuple]:
    """(session, engine) on a fresh schema without Flask: a bare Engine (no connectors, no SLA
    listener) and the demo accounts, for engine unit tests (no app factory to pay for)."""
    from sqlalchemy.orm import scoped_session, sessionmaker

    import slas.models  # noqa: F401  (tables the demo accounts' groups refer to)
    from engine import unit_of_work
    from engine.database import configure
    from engine.db import Base
    from engine.runtime import Engine
    from web.demo import create_accounts

    db_engine = create_engine(db_url, **engine_options(db_url))
    configure(db_engine)
    Base.metadata.create_all(db_engine)
    unit_of_work.install()
    session = scoped_session(sessionmaker(db_engine))
    create_accounts(session, T0)
    session.commit()
    yield session, Engine()
    session.remove()
    db_engine.dispose()


@pytest.fixture(scope="session")
def operations_catalog(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The connector operations the product installs (no peer configured), built once per test
    run: what deploying the bundled diagrams needs, without an app per test."""
    scratch = tmp_path_factory.mktemp("catalog")
    from web import create_app

    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{scratch / 'ops.db'}",
                      "KEFU_DATA_DIR": str(scratch), "KEFU_BILLING_URL": f"sqlite:///{scratch / 'billing.db'}",
                      "KEFU_SMPP_URL": "", "KEFU_AMI_URL": "", "KEFU_FTP_URL": ""})
    return dict(app.extensions["kefu_connectors"].operations)


@pytest.fixture
def bundled(store, operations_catalog) -> Iterator[tuple]:
    """(session, engine) without Flask, as the product builds its engine (SLA clocks, assignment
    from data, property checks, the operations catalogue) with the bundled diagrams deployed."""
    from engine.runtime import Engine
    from processes.outbound_calls import AssigneeFromData
    from slas.clocks import SlaListener
    from slas.policies import check_properties

    session, _bare = store
    engine = Engine(listeners=[AssigneeFromData(), SlaListener()], checks=[check_properties],
                    operations=operations_catalog)
    engine.deploy_directory(session, ROOT / "bpmn", now=T0)
    session.commit()
    yield session, engine


BILLING_TODAY = date(2026, 11, 23)


@pytest.fixture
def billing(app):
    """The app's billing interim database with demo subscribers (13800000001 VIP, …02 in arrears,
    …03 blacklisted, service password 123456); emptied first on a shared PostgreSQL."""
    from connectors.billing import demo_data
    from connectors.billing.schema import metadata

    gateway = app.extensions["kefu_billing"]
    if os.environ.get("KEFU_TEST_BILLING_URL"):
        metadata.drop_all(gateway.engine)
    demo_data.seed(gateway, subscribers=60, today=BILLING_TODAY, calls_per_day=0.6)
    return gateway


# AMI client timings for tests: quick timeouts and reconnects against the loopback peer.
FAST_AMI = {"ping_interval": 30.0, "action_timeout": 2.0, "connect_timeout": 2.0,
            "reconnect_initial": 0.05, "reconnect_max": 0.2, "originate_grace": 0.5}


@pytest.fixture
def pbx_app(app, ami_peer):
    """The test app dialling and listening through the loopback AMI peer (links closed after)."""
    from web.connectors_setup import use_pbx

    app.config["KEFU_AMI_OPTIONS"] = FAST_AMI
    pbx = use_pbx(app, ami_peer.url)
    yield app
    pbx.close()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def ctx(app):
    """An app context with the session and engine, for tests that drive the engine directly."""
    from web.extensions import db

    with app.app_context():
        yield db.session, app.extensions["kefu_engine"]


@pytest.fixture
def token(client):
    """``token("agent1")`` → a bearer header for that demo account."""
    cache: dict[str, dict[str, str]] = {}

    def get(username: str) -> dict[str, str]:
        if username not in cache:
            response = client.post("/api/v1/auth/token",
                                   json={"username": username, "password": "kefu-demo"})
            assert response.status_code == 200, response.get_json()
            cache[username] = {"Authorization": f"Bearer {response.get_json()['token']}"}
        return cache[username]

    return get


INTAKE = {
    "customer_phone": "13800000009", "complainant_name": "王先生", "contact_phone": "13800000009",
    "channel": "phone", "category": "network", "description": "室内信号差", "request": "尽快处理",
}

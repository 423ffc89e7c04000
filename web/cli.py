"""``flask --app wsgi kefu …`` commands: init, demo, create-admin, tick, worker, scheduler, serve."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask, current_app

from engine.clock import utcnow

from .extensions import db


def _engine():
    return current_app.extensions["kefu_engine"]


def initialize() -> list[str]:
    """Bring the schema up to date (Alembic), create the groups the bundled diagrams name and
    deploy changed bundled diagrams: no demo users or groups (``kefu demo`` loads those)."""
    from flask_migrate import upgrade

    upgrade(directory=current_app.extensions["migrate"].directory)
    from .demo import ensure_groups

    ensure_groups(db.session, demo=False)  # the groups the bundled diagrams name; no demo city center
    from processes.sms_templates import ensure_defaults

    ensure_defaults(db.session)
    deployed = _engine().deploy_directory(db.session, Path(current_app.config["KEFU_BPMN_DIR"]),
                                          now=utcnow())
    db.session.commit()
    return [f"{d.key} v{d.version}" for d in deployed]


def _parse_at(value: str | None) -> datetime:
    if not value:
        return utcnow()
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(f"'{value}' is not an ISO-8601 time") from exc
    if moment.tzinfo is None:
        raise click.BadParameter("give a time zone, e.g. 2026-11-23T10:00:00+08:00")
    return moment.astimezone(UTC)


def create_admin(username: str | None, name: str | None, password: str | None) -> None:
    """``kefu create-admin``: an administrator with a strong password, once (an existing user name
    changes nothing). Missing values are asked for; a weak password is refused (exit status 1)."""
    from engine.administration import AdminInvalid, create_user
    from engine.people import user_by_name

    from .people_text import field_messages

    username = (username or click.prompt("User name", default="admin")).strip()
    if user_by_name(db.session, username) is not None:
        click.echo(f"user '{username}' already exists; nothing changed")
        return
    name = (name or click.prompt("Display name", default="系统管理员")).strip()
    if password is None:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        create_user(db.session, {"username": username, "name": name, "password": password, "roles": ["admin"]},
                    actor="create-admin", now=utcnow())
    except AdminInvalid as exc:
        db.session.rollback()
        with current_app.test_request_context("/"):  # the messages in the default language
            messages = field_messages(exc)
        for field, message in messages.items():
            click.echo(f"{field}: {message}", err=True)
        raise click.exceptions.Exit(1) from exc
    db.session.commit()
    click.echo(f"administrator '{username}' created")


def _tick_once(app: Flask) -> None:
    import os
    import socket

    from engine import lease
    from processes.tick import tick

    from .scheduler import LEASE, tick_settings

    now = utcnow()
    holder = f"{socket.gethostname()}:{os.getpid()}:once"
    if not lease.acquire(db.session, LEASE, holder, now, ttl_seconds=30):
        click.echo("another scheduler holds the lease; nothing done")
        return
    report = tick(db.session, _engine(), now, **tick_settings(app))
    lease.record_tick(db.session, LEASE, now)
    lease.release(db.session, LEASE, holder)  # commits the tick as well
    for line in report.lines():
        click.echo(line)


def _run_scheduler(app: Flask) -> None:
    import signal
    import threading

    from .scheduler import start_scheduler

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    scheduler = start_scheduler(app)
    click.echo(f"Kefu scheduler: a tick every {app.config['KEFU_TICK_SECONDS']:g} s (SIGTERM stops)")
    stop.wait()
    scheduler.shutdown(wait=True)  # a running tick finishes; the lease then expires by itself


def register(app: Flask) -> None:
    @app.cli.group("kefu")
    def kefu() -> None:
        """Kefu operations."""

    @kefu.command("init")
    def init_command() -> None:
        """Create or upgrade the database and deploy the bundled BPMN."""
        for line in initialize() or ["bundled definitions are up to date"]:
            click.echo(f"deployed {line}" if " v" in line else line)

    @kefu.command("demo")
    def demo_command() -> None:
        """Load the demo accounts and sample cases (once)."""
        from .demo import load_demo

        initialize()
        loaded = load_demo(db.session, _engine(), utcnow())
        click.echo("demo data loaded" if loaded else "demo data already present")

    @kefu.command("reindex-cases")
    def reindex_cases_command() -> None:
        """Write the desk's search row (name, words, priority, VIP) of cases recorded before it existed."""
        from processes.desk_search import backfill

        count = backfill(db.session, lambda instance: _engine().workflow_data(db.session, instance))
        click.echo(f"{count} cases indexed for the desk's search")

    @kefu.command("backfill-cities")
    def backfill_cities_command() -> None:
        """Fill the complaint statistics' city (地市) of complaints recorded before it was kept."""
        from flask import current_app

        from processes.complaint_cities import backfill_cities

        billing, transfers = backfill_cities(db.session, current_app.extensions["kefu_billing"].home_city)
        click.echo(f"complaint cities: {billing} from billing's home city, {transfers} from city transfers")

    @kefu.command("create-admin")
    @click.option("--username", default=None, help="default: asked (admin)")
    @click.option("--name", default=None, help="display name; default: asked (系统管理员)")
    @click.option("--password", default=None, help="default: asked, hidden, twice")
    def create_admin_command(username: str | None, name: str | None, password: str | None) -> None:
        """Create the first administrator (the production set-up step after `init`)."""
        create_admin(username, name, password)

    @kefu.command("tick")
    @click.option("--at", "at", help="ISO-8601 time to tick as of (default: now)")
    def tick_command(at: str | None) -> None:
        """Run one tick (timers, SLA scan) as of a given time and print what it did."""
        from processes.tick import tick

        from .scheduler import tick_settings

        report = tick(db.session, _engine(), _parse_at(at), **tick_settings(current_app._get_current_object()))
        for line in report.lines():
            click.echo(line)

    @kefu.command("worker")
    @click.option("--once", is_flag=True, help="run what is due now and exit")
    @click.option("--interval", type=float, default=1.0, help="seconds between rounds")
    def worker_command(once: bool, interval: float) -> None:
        """Run connector jobs and settle what peers sent, until interrupted (or once)."""
        from processes.inbound import process_inbound

        from .connectors_setup import start_links

        app = current_app._get_current_object()
        start_links(app)
        while True:
            now = utcnow()
            report = _engine().run_jobs(db.session, now)
            settled = process_inbound(db.session, _engine(), now)
            db.session.commit()
            if report.total or settled or once:
                click.echo(f"{now.isoformat()}: {report}, {settled} inbound message(s) settled")
            if once:
                break
            time.sleep(interval)
        app.extensions["kefu_connectors"].close()

    @kefu.command("scheduler")
    @click.option("--once", is_flag=True, help="one tick, if this process gets the lease, and exit")
    def scheduler_command(once: bool) -> None:
        """Tick every KEFU_TICK_SECONDS until stopped (SIGTERM or Ctrl-C): the production scheduler.

        Timers, SLA scan, due connector jobs; several may run, the database lease lets one act."""
        from .connectors_setup import start_links

        app = current_app._get_current_object()
        start_links(app)
        try:
            if once:
                _tick_once(app)
            else:
                _run_scheduler(app)
        finally:
            app.extensions["kefu_connectors"].close()

    @kefu.command("serve")
    @click.option("--port", type=int, default=None, help="default: KEFU_PORT or 5000")
    @click.option("--host", default="127.0.0.1")
    @click.option("--demo/--no-demo", default=False, help="load demo data first")
    @click.option("--scheduler/--no-scheduler", default=True)
    # Each open page of an agent holds one thread for its screen-pop stream (up to ~25 s at a time).
    @click.option("--threads", type=int, default=32)
    def serve_command(port: int | None, host: str, demo: bool, scheduler: bool, threads: int) -> None:
        """Set up the database and serve the product (waitress) until interrupted."""
        from waitress import serve

        started = time.monotonic()
        for line in initialize():
            click.echo(f"deployed {line}")
        if demo:
            from .demo import ACCOUNTS, PASSWORD, load_demo
            from .demo_peers import start_demo_ftp, start_demo_pbx, start_demo_smsc

            for start_peer in (start_demo_smsc, start_demo_pbx, start_demo_ftp):
                line = start_peer(current_app._get_current_object())
                if line:
                    click.echo(line)
            load_demo(db.session, _engine(), utcnow())
            from .roaming import start_demo_roaming

            line = start_demo_roaming(current_app._get_current_object(), port or current_app.config["KEFU_PORT"])
            if line:
                click.echo(line)
            click.echo(f"demo accounts (password '{PASSWORD}'):")
            for username, name, roles in ACCOUNTS:
                click.echo(f"  {username:<10} {roles:<16} {name}")
        db.session.remove()
        if scheduler:
            from .connectors_setup import start_links
            from .scheduler import start_scheduler

            start_links(current_app._get_current_object())
            start_scheduler(current_app._get_current_object())
        port = port or current_app.config["KEFU_PORT"]
        click.echo(f"Kefu is serving on http://{host}:{port}/ "
                   f"(ready in {time.monotonic() - started:.1f}s; Ctrl-C stops)")
        serve(current_app._get_current_object(), host=host, port=port, threads=threads,
              ident="kefu", _quiet=True)

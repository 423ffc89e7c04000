"""Kefu's web application: the composition root that wires engine, SLAs and connectors.

Nothing imports this package; it imports everything else.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, request, session
from flask_login import current_user

from engine import models as _engine_models  # noqa: F401  (registers tables)
from engine import outbox as _outbox  # noqa: F401  (registers tables)
from engine.lease import SchedulerLease  # noqa: F401
from engine.runtime import Engine
from processes import attachments as _attachments  # noqa: F401  (registers tables)
from processes import case_facts as _case_facts  # registers tables; its step listener below
from processes import complaint_facts as _complaint_facts  # registers tables; its step listener below
from processes import desk_search as _desk_search  # registers tables; its step listener below
from processes import dunning as _dunning  # noqa: F401  (registers tables)
from processes import file_exchange as _file_exchange  # noqa: F401  (registers tables)
from processes import payment_reminders as _payment_reminders  # noqa: F401  (registers tables)
from processes import reply_templates as _reply_templates  # noqa: F401  (registers tables)
from processes import roaming as _roaming  # registers tables; its step listener below
from processes import saved_views as _saved_views  # noqa: F401  (registers tables)
from processes import sms_templates as _sms_templates  # noqa: F401  (registers tables)
from processes import telephony as _telephony  # noqa: F401  (registers tables)
from processes import threshold_alerts as _threshold_alerts  # noqa: F401  (registers tables)
from slas import models as _sla_models  # noqa: F401
from slas.clocks import SlaListener
from slas.policies import check_properties

from . import config
from .extensions import babel, csrf, db, login_manager, migrate


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Build the app: configuration, extensions, the engine, blueprints and CLI commands."""
    app = Flask(__name__, instance_relative_config=False)
    app.config.from_mapping(config.from_environment())
    if test_config:
        app.config.update(test_config)
        if "SQLALCHEMY_DATABASE_URI" in test_config and "SQLALCHEMY_ENGINE_OPTIONS" not in test_config:
            from engine.database import engine_options

            app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(test_config["SQLALCHEMY_DATABASE_URI"])

    from . import request_limits

    request_limits.install(app)  # bounded JSON bodies, 64-bit ids (before any route exists)
    from . import security_headers

    security_headers.install(app)
    db.init_app(app)
    from engine import unit_of_work
    from engine.database import configure

    unit_of_work.install()  # post-commit effects (engine/unit_of_work.py)

    with app.app_context():
        configure(db.engine)
    migrate.init_app(app, db, directory=str(config.PROJECT_ROOT / "migrations"))
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    babel.init_app(app, locale_selector=_select_locale, timezone_selector=lambda: "Asia/Shanghai")
    from .connectors_setup import build_registry

    registry = build_registry(app)
    app.extensions["kefu_connectors"] = registry
    from engine.assignment import AutoAssignment  # 系统分配 by the group's rule, after AssigneeFromData
    from processes.outbound_calls import AssigneeFromData
    from slas.upgrades import UpgradeListener  # 越级投诉 flagged at intake

    app.extensions["kefu_engine"] = Engine(listeners=[AssigneeFromData(), AutoAssignment(), SlaListener(),
                                                      UpgradeListener(), _roaming.RoamingListener(),
                                                      _complaint_facts.ComplaintFactsListener(
                                                          home_city=app.extensions["kefu_billing"].home_city),
                                                      _case_facts.CaseFactsListener(),
                                                      _desk_search.CaseIndexListener()],
                                           checks=[check_properties],
                                           cache_size=app.config["KEFU_WORKFLOW_CACHE"],
                                           operations=registry.operations,
                                           job_threads=app.config["KEFU_JOB_THREADS"])

    from . import (
        admin,
        admin_calendars,
        admin_people,
        api,
        auth,
        calls,
        case_tools,
        cases,
        city,
        cli,
        customers,
        dunning,
        errors,
        escalations,
        inbox,
        modeler,
        national,
        report_alerts,
        reports,
        roaming,
        roaming_report,
        search,
        service_reports,
        upgraded,
        views_helpers,
    )

    app.register_blueprint(auth.bp)
    app.register_blueprint(inbox.bp)
    app.register_blueprint(cases.bp)
    app.register_blueprint(escalations.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(admin_people.bp)
    app.register_blueprint(admin_calendars.bp)
    app.register_blueprint(city.bp)
    app.register_blueprint(national.bp)
    app.register_blueprint(upgraded.bp)
    app.register_blueprint(modeler.bp)
    app.register_blueprint(customers.bp)
    app.register_blueprint(calls.bp)
    app.register_blueprint(dunning.bp)
    app.register_blueprint(roaming.bp)
    app.register_blueprint(reports.bp)
    app.register_blueprint(search.bp)
    app.register_blueprint(report_alerts.bp)
    app.register_blueprint(service_reports.bp)
    app.register_blueprint(roaming_report.bp)
    app.register_blueprint(case_tools.bp)
    api.register(app)  # the REST API (web/api/), exempt from CSRF
    errors.register(app)
    views_helpers.register(app)
    cli.register(app)
    return app


def _select_locale() -> str:
    languages = ["zh_CN", "en"]
    chosen = session.get("lang")
    if chosen in languages:
        return chosen
    if current_user and getattr(current_user, "is_authenticated", False) and current_user.locale in languages:
        return current_user.locale
    if request.args.get("lang") in languages:
        return request.args["lang"]
    return "zh_CN"

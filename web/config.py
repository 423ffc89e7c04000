"""Configuration from environment variables, with defaults that make ``make run`` work alone."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from engine.database import engine_options
from processes.attachment_store import s3_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _secret_key(data_dir: Path) -> str:
    """KEFU_SECRET_KEY, or a random key kept in the data dir so sessions survive restarts."""
    if os.environ.get("KEFU_SECRET_KEY"):
        return os.environ["KEFU_SECRET_KEY"]
    path = data_dir / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _sized_pool(options: dict) -> dict:
    """KEFU_DB_POOL: database connections per process (a server database; SQLite needs no pool).
    Each process of the production server has its own pool, so that processes × pool stays under
    the server's max_connections, and a few connections per core keep the database busiest."""
    size = os.environ.get("KEFU_DB_POOL")
    if size and "pool_size" in options:
        options = {**options, "pool_size": int(size), "max_overflow": 0}
    return options


def _attachment_store(url: str) -> str:
    """KEFU_ATTACHMENT_STORE, refused at start when it is not s3://bucket/prefix (nor empty)."""
    if url.strip():
        s3_settings(url.strip())
    return url.strip()


def from_environment() -> dict:
    """Flask config built from ``KEFU_*`` variables."""
    data_dir = Path(os.environ.get("KEFU_DATA_DIR", PROJECT_ROOT / "instance")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    url = os.environ.get("KEFU_DATABASE_URL") or f"sqlite:///{data_dir / 'kefu.db'}"
    return {
        "KEFU_DATA_DIR": str(data_dir),
        "KEFU_PORT": int(os.environ.get("KEFU_PORT", "5000")),
        "KEFU_BPMN_DIR": str(PROJECT_ROOT / "bpmn"),
        "KEFU_TICK_SECONDS": float(os.environ.get("KEFU_TICK_SECONDS", "5")),
        "KEFU_WORKFLOW_CACHE": int(os.environ.get("KEFU_WORKFLOW_CACHE", "1000")),
        "KEFU_SMPP_URL": os.environ.get("KEFU_SMPP_URL", ""),
        "KEFU_BILLING_URL": os.environ.get("KEFU_BILLING_URL") or f"sqlite:///{data_dir / 'billing.db'}",
        # Unset: a demo billing database in the data dir, with the demo billing simulator.
        "KEFU_BILLING_DEMO": not os.environ.get("KEFU_BILLING_URL"),
        "KEFU_AMI_URL": os.environ.get("KEFU_AMI_URL", ""),
        # The national / network-management centre's FTP exchange (ftp:// or ftps://).
        "KEFU_FTP_URL": os.environ.get("KEFU_FTP_URL", ""),
        # How long the receiver has to write NAME.ok before the file is sent again (then an incident).
        "KEFU_FTP_ACK_MINUTES": int(os.environ.get("KEFU_FTP_ACK_MINUTES", "60")),
        "KEFU_POP_STREAM_SECONDS": float(os.environ.get("KEFU_POP_STREAM_SECONDS", "25")),
        # Customers are called back only in these hours (Beijing time); outside, callbacks wait.
        "KEFU_CALLBACK_HOURS": os.environ.get("KEFU_CALLBACK_HOURS", "08:00-21:00"),
        # Dunning (欠费催缴): IVR dunning calls only in these hours (Beijing time); last month's round
        # opens by itself on this day of the month; no payment this many days after the call → again.
        "KEFU_DUNNING_HOURS": os.environ.get("KEFU_DUNNING_HOURS", "09:00-20:00"),
        "KEFU_DUNNING_DAY": int(os.environ.get("KEFU_DUNNING_DAY", "5")),
        "KEFU_DUNNING_RECALL_DAYS": int(os.environ.get("KEFU_DUNNING_RECALL_DAYS", "7")),
        # Payment reminders (缴费提醒): one SMS when a postpaid subscription's used amount reaches each
        # of these percentages of its credit limit, or a prepaid balance falls below the floor (fen);
        # the day's pass runs within these hours (Beijing time).
        "KEFU_REMINDER_THRESHOLDS": os.environ.get("KEFU_REMINDER_THRESHOLDS", "80,100"),
        "KEFU_PREPAID_FLOOR_FEN": int(os.environ.get("KEFU_PREPAID_FLOOR_FEN", "1000")),
        "KEFU_REMINDER_HOURS": os.environ.get("KEFU_REMINDER_HOURS", "09:00-20:00"),
        "KEFU_JOB_THREADS": int(os.environ.get("KEFU_JOB_THREADS", "16")),
        # A step may be urged (催办) again only after this many minutes.
        "KEFU_URGE_MINUTES": int(os.environ.get("KEFU_URGE_MINUTES", "30")),
        # How often the inbox reloads its rows in the browser (web/static/inbox.js).
        "KEFU_INBOX_REFRESH_SECONDS": max(2, int(os.environ.get("KEFU_INBOX_REFRESH_SECONDS", "15"))),
        # Attachments on cases (web/case_tools.py): at most this many MB each.
        "KEFU_ATTACHMENT_MB": int(os.environ.get("KEFU_ATTACHMENT_MB", "10")),
        # Where attachments are kept: unset, the data dir; s3://bucket/prefix, an S3-compatible store
        # (processes/attachment_store.py) at KEFU_S3_ENDPOINT (unset: AWS) with these credentials
        # (unset: the client's usual sources) and region; addressing path | virtual (unset: path
        # when an endpoint is given).
        "KEFU_ATTACHMENT_STORE": _attachment_store(os.environ.get("KEFU_ATTACHMENT_STORE", "")),
        "KEFU_S3_ENDPOINT": os.environ.get("KEFU_S3_ENDPOINT", "").strip(),
        "KEFU_S3_ACCESS_KEY": os.environ.get("KEFU_S3_ACCESS_KEY", ""),
        "KEFU_S3_SECRET_KEY": os.environ.get("KEFU_S3_SECRET_KEY", ""),
        "KEFU_S3_REGION": os.environ.get("KEFU_S3_REGION", "us-east-1").strip(),
        "KEFU_S3_ADDRESSING": os.environ.get("KEFU_S3_ADDRESSING", "").strip().lower(),
        # Roaming complaint transfer: this deployment's company code and the partners' JSON file
        # (unset: the shipped number-segment table, every partner looped back to this server).
        "KEFU_COMPANY_CODE": os.environ.get("KEFU_COMPANY_CODE", "YN").strip().upper() or "YN",
        "KEFU_PARTNERS": os.environ.get("KEFU_PARTNERS", ""),
        "SECRET_KEY": _secret_key(data_dir),
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": _sized_pool(engine_options(url)),
        "MAX_CONTENT_LENGTH": 2 * 1024 * 1024,
        "BABEL_DEFAULT_LOCALE": "zh_CN",
        "BABEL_DEFAULT_TIMEZONE": "Asia/Shanghai",
        "KEFU_LANGUAGES": ["zh_CN", "en"],
        "KEFU_TOKEN_HOURS": 12,
        "WTF_CSRF_TIME_LIMIT": None,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        # Behind HTTPS (production): the session cookie is sent over HTTPS only.
        "SESSION_COOKIE_SECURE": os.environ.get("KEFU_SECURE_COOKIES", "").lower() in ("1", "true", "yes"),
        "REMEMBER_COOKIE_SECURE": os.environ.get("KEFU_SECURE_COOKIES", "").lower() in ("1", "true", "yes"),
    }

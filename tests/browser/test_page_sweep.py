"""Every page × every demo role, in a real browser (issue 16): each GET page of the app, with sample
ids from the demo data, opened by one user of each role. A page a role may not see must answer a
Chinese refusal (403/404); a page it may see must not show a raw dict or JSON, an English event code
or untranslated English, nor fail (500). The leader's alerts page and a handler's task (and the
other pages the issue names) must not scroll sideways at 390 px. Screenshots of every page go to
``$KEFU_ARTIFACTS/page-sweep`` (else the test's tmp dir); the directory is printed.

A page added to the app without a way to open it here (a sample for each of its parameters, or a
reason why it is not an HTML page) fails the test, so that the sweep keeps covering every page.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from engine.database import engine_options
from tests.browser.conftest import login

# One user of each demo role (web/demo.py).
USERS = ["agent1", "leader1", "net1", "netlead1", "manager1", "analyst1", "admin"]

# GET rules that are not HTML pages of their own (endpoint -> why).
NOT_PAGES = {
    "static": "static files",
    "case_tools.download": "a file download (Content-Disposition: attachment)",
    "calls.stream": "a server-sent event stream",
    "cases.history_fragment": "an HTML fragment for the intake form",
    "inbox.rows": "an HTML fragment for the live inbox",
    "auth.set_language": "a redirect that switches the language",
    "auth.login": "checked signed out, below",
    "modeler.download": "a BPMN file",
    "modeler.template": "a BPMN file",
    "modeler.vendor": "the modeler's JavaScript",
    "reports.complaints_xlsx": "an Excel export",
    "reports.echarts": "the charts' JavaScript",
}
# Query strings a page needs to show itself (the customer 360 asks why it is looked up).
QUERIES = {"customers.view": "reason=enquiry"}
# Pages checked at 390 px too (the issue names the leader's alerts page and a handler's task).
PHONE_ENDPOINTS = {"escalations.page", "inbox.task", "inbox.tasks", "cases.show", "cases.index",
                   "customers.view", "case_tools.templates_page", "cases.new_complaint"}

# Words that are not untranslated English: product and protocol names, units, file types.
ALLOWED_WORDS = {
    "kefu", "sms", "sla", "vip", "pdf", "png", "jpeg", "jpg", "office", "docx", "xlsx", "pptx", "txt", "csv",
    "mb", "kb", "gb", "bpmn", "id", "cti", "api", "smpp", "ami", "ftp", "ftps", "ivr", "english", "ok",
    "ip", "url", "excel", "http", "https", "json", "xml", "email", "e-mail", "wifi", "app", "www",
    "fen", "utc", "gmt", "cpu", "sim", "gprs", "vpn", "ussd", "mms", "qq", "wechat", "vs",
}
# ASCII word edges: next to a Chinese character Python's \b finds no edge (both are \w).
_L, _R = r"(?<![A-Za-z0-9_])", r"(?![A-Za-z0-9_])"
EVENT_CODE = re.compile(rf"{_L}[a-z]+(?:_[a-z0-9]+)+{_R}|{_L}[a-z]+\.[a-z_]+{_R}")
ENGLISH_RUN = re.compile(r"[A-Za-z][A-Za-z'’-]+(?:[ ,]+[A-Za-z][A-Za-z'’-]+)*")
# Not words: case numbers (TS20261206000012), versions (v3), levels (L2), e-mail addresses, links,
# file names, acronyms (GSM, PUK, YN), and the demo accounts' login names (data, shown with names).
NOT_WORDS = re.compile(
    rf"{_L}[A-Z]{{1,4}}\d[\w-]*|{_L}[A-Za-z]\d+{_R}|\S+@\S+|https?://\S+|{_L}[A-Z]{{2,4}}{_R}"
    rf"|[\w.-]+\.(?:bpmn|pdf|png|jpe?g|txt|csv|docx|xlsx|pptx|json|xml){_R}"
    rf"|{_L}(?:(?:agent|leader|net|netlead|bill|billlead|sales|dun|manager|analyst|hzseat|hzlead)\d+|admin){_R}")
# Findings on pages other helpers are changing right now, reported to them (issue 16 sweep):
# (path prefix, finding prefix) -> whom it was reported to. Printed, not failed; remove when fixed.
KNOWN: dict[tuple[str, str], str] = {}
# The page's text, hidden parts included (they show on a click), but not what a page marks as an
# identifier on purpose (<code>: process keys for the analyst), nor scripts and styles.
PAGE_TEXT = """() => {
  const parts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent && !parent.closest("code, script, style, template, noscript, textarea")) { parts.push(walker.currentNode.nodeValue); }
  }
  return parts.join(" ");
}"""


@dataclass
class Sweep:
    findings: list[str] = field(default_factory=list)
    seen: dict[str, list[str]] = field(default_factory=dict)  # rule -> users who saw it (200)
    known: set[str] = field(default_factory=set)
    pages: int = 0


def _samples(db_url: str) -> dict[str, list[Any]]:
    """Parameter name -> values from the demo data (one case and one open step of each kind)."""
    engine = create_engine(db_url, **engine_options(db_url))
    with engine.connect() as conn:
        def ids(sql: str) -> list[Any]:
            try:
                return [row[0] for row in conn.execute(text(sql))]
            except DBAPIError:  # a table of a feature this checkout does not have yet
                conn.rollback()
                return []

        samples = {
            "instance_id": ids("SELECT MIN(id) FROM process_instances GROUP BY process_key ORDER BY 1"),
            "task_id": ids("SELECT MIN(id) FROM human_tasks WHERE status = 'open' GROUP BY form_name ORDER BY 1"),
            "key": ids("SELECT DISTINCT key FROM process_definitions ORDER BY 1"),
            "phone": ["13800000001"],
            "code": ids("SELECT code FROM groups ORDER BY id")[:1],
            "username": ["agent1"],
            "year": [datetime.now(UTC).year],
            "rule_id": ids("SELECT id FROM alert_rules ORDER BY id")[:1],
        }
    engine.dispose()
    return samples


def _urls(app_rules: list[tuple[str, str, list[str]]], samples: dict[str, list[Any]]) -> list[tuple[str, str]]:
    """``(endpoint, url)`` for every page; a parameter without samples fails here."""
    urls = []
    missing = []
    for rule, endpoint, arguments in app_rules:
        if endpoint in NOT_PAGES or endpoint.startswith("api.") or rule.startswith("/api/"):
            continue
        combos: list[str] = [rule]
        for name in arguments:
            choices = re.search(rf"<any\(([^)]*)\):{name}>", rule)  # every choice of an any() part
            values = [c.strip() for c in choices.group(1).split(",")] if choices else samples.get(name)
            if values is None:
                missing.append(f"{rule} ({name})")
                break
            combos = [re.sub(rf"<(?:[^<>]*:)?{name}>", str(v), c) for c in combos for v in values]
        else:
            query = QUERIES.get(endpoint)
            urls += [(endpoint, f"{c}?{query}" if query else c) for c in combos]
    assert not missing, f"pages without sample values (add them to _samples or NOT_PAGES): {missing}"
    return urls


def _prepare(db_url: str, data_dir: Path) -> list[tuple[str, str, list[str]]]:
    """The app's GET rules, from an app built in this process on the server's database and data
    dir; and what the sweep should see filled in: escalations with their SMS (as the tick raises
    them), a note, an attachment and a reply template on the demo's first running case."""
    from engine.models import ProcessInstance
    from engine.people import user_by_name
    from processes import attachments, reply_templates
    from slas.notifications import notify_supervisors
    from slas.scanner import scan
    from web import create_app
    from web.extensions import db

    app = create_app({"SQLALCHEMY_DATABASE_URI": db_url})
    with app.app_context():
        now = datetime.now(UTC) + timedelta(hours=30)  # every running step of the demo is late by then
        notify_supervisors(db.session, scan(db.session, now).escalations, now)
        leader = user_by_name(db.session, "leader1")
        case = db.session.get(ProcessInstance, db.session.execute(
            text("SELECT MIN(id) FROM process_instances WHERE status = 'running'")).scalar())
        reply_templates.add_note(db.session, case, "客户要求书面答复", leader, now)
        attachments.add(db.session, data_dir / "attachments", case, "话单.pdf", b"%PDF-1.4\n%%EOF\n", leader, now)
        reply_templates.save(db.session, None, "network", "信号问题已派单", "您反映的信号问题已转网络部处理。", leader, now)
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return [(r.rule, r.endpoint, sorted(r.arguments)) for r in app.url_map.iter_rules()
            if "GET" in (r.methods or ()) and r.endpoint != "static"]


def _visible_problems(body: str) -> list[str]:
    problems = []
    for marker in ("{'", '{"', "[{"):
        if marker in body:
            at = body.index(marker)
            problems.append(f"raw data: …{body[max(0, at - 30):at + 50]!r}")
    cleaned = NOT_WORDS.sub(" ", body)
    for code in sorted(set(EVENT_CODE.findall(cleaned))):
        problems.append(f"code: {code!r}")
    for run in ENGLISH_RUN.findall(cleaned):
        words = [w.strip("'’-").lower() for w in re.split(r"[ ,]+", run) if w]
        if any(w and w not in ALLOWED_WORDS for w in words):
            problems.append(f"English: {run!r}")
    return problems


def _artifacts(tmp_path: Path) -> Path:
    base = Path(os.environ["KEFU_ARTIFACTS"]) if os.environ.get("KEFU_ARTIFACTS") else tmp_path
    directory = base / "page-sweep"
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def _slug(url: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", url).strip("-")[:80] or "home"


def _visit(page, server: str, url: str, who: str, shots: Path, sweep: Sweep, endpoint: str) -> int:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    response = page.goto(server + url)
    status = response.status if response is not None else 0
    where = f"{url} as {who} ({status})"
    if status >= 500:
        sweep.findings.append(f"{where}: server error")
        return status
    body = page.evaluate(PAGE_TEXT)
    if "/login" in page.url and who != "-":
        sweep.findings.append(f"{where}: sent to the sign-in page")
    for problem in _visible_problems(body):
        known = next((who for (path, kind), who in KNOWN.items()
                      if url.startswith(path) and problem.startswith(kind)), None)
        if known:
            sweep.known.add(f"{url}: {known}")
        else:
            sweep.findings.append(f"{where}: {problem}")
    sweep.findings += [f"{where}: script error {e}" for e in errors]
    page.screenshot(path=str(shots / f"{who}-{_slug(url)}-{status}.png"), full_page=True)
    sweep.pages += 1
    if status == 200:
        sweep.seen.setdefault(endpoint, []).append(who)
    return status


@pytest.mark.slow
def test_every_page_as_every_role(browser, server, db_url, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"  # the server fixture's data dir
    monkeypatch.setenv("KEFU_DATA_DIR", str(data_dir))
    urls = _urls(_prepare(db_url, data_dir), _samples(db_url))
    shots = _artifacts(tmp_path)
    print(f"\npage sweep: {len(urls)} pages × {len(USERS)} roles; screenshots in {shots}")
    sweep = Sweep()

    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    page = context.new_page()
    _visit(page, server, "/login", "-", shots, sweep, "auth.login")
    context.close()
    for who in USERS:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
        context.set_default_timeout(20_000)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN", is_mobile=True)
        try:
            page, small = context.new_page(), phone.new_page()
            login(page, server, who)
            login(small, server, who)
            for endpoint, url in urls:
                status = _visit(page, server, url, who, shots, sweep, endpoint)
                if status == 200 and endpoint in PHONE_ENDPOINTS:
                    small.goto(server + url)
                    overflow = small.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    small.screenshot(path=str(shots / f"{who}-{_slug(url)}-390px.png"), full_page=True)
                    if overflow > 1:
                        sweep.findings.append(f"{url} as {who}: scrolls sideways by {overflow} px at 390 px")
        finally:
            context.close()
            phone.close()
    unseen = sorted({e for e, _u in urls} - set(sweep.seen))
    print(f"page sweep: {sweep.pages} page views; screenshots in {shots}")
    for line in sorted(sweep.known):
        print(f"page sweep, known and reported: {line}")
    report = "\n".join(sorted(set(sweep.findings)))
    assert not unseen, f"pages no demo role could open: {unseen}"
    assert not sweep.findings, f"{len(set(sweep.findings))} problems:\n{report}"

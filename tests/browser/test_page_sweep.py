"""Every page × every demo role, in a real browser (issue 16): each GET page of the app, with sample
ids from the demo data, opened by one user of each role. A page a role may not see must answer a
Chinese refusal (403/404); a page it may see must not show a raw dict or JSON, an English event code
or untranslated English, nor fail (500). The leader's alerts page and a handler's task (and the
other pages the issue names) must not scroll sideways at 390 px. Screenshots of every page go to
``$KEFU_ARTIFACTS/page-sweep`` (else the test's tmp dir); the directory is printed.

The same pages in English (issue 15: "English available, with the same tests"), each opened by the
first role that may see it, must not show a raw dict or JSON, an internal code, nor Chinese UI text:
Chinese is allowed only where it is data (the databases' texts — customers, groups, the diagrams'
names — and the administrators' calendar files). Chinese that the product itself wrote into the
database (a refusal's reasons in a case's data, say) counts as data here, so this check cannot see it.

A page added to the app without a way to open it here (a sample for each of its parameters, or a
reason why it is not an HTML page) fails the test, so that the sweep keeps covering every page.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import JSON, MetaData, String, Text, create_engine, select, text
from sqlalchemy.exc import DBAPIError

from engine.database import engine_options
from tests.browser.conftest import ROOT, login

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
    "roaming_report.xlsx": "an Excel export",
    "service_reports.xlsx": "an Excel export",
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
KNOWN: dict[tuple[str, str], str] = {
}
# The page's text, hidden parts included (they show on a click), but not what a page marks as an
# identifier on purpose (<code>: process keys for the analyst), nor what it marks as written in
# another language (lang="…": the language switch's 中文 / English, an English name beside the
# Chinese one), nor scripts and styles.
PAGE_TEXT = """() => {
  const parts = [];
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  while (walker.nextNode()) {
    const parent = walker.currentNode.parentElement;
    if (parent && !parent.closest("code, script, style, template, noscript, textarea, [lang]:not(html)")) { parts.push(walker.currentNode.nodeValue); }
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
            # "endpoint:parameter" where a page's parameter is not the one of that name elsewhere
            "people.edit_role:code": ids("SELECT code FROM roles ORDER BY id")[:1],
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
            values = ([c.strip() for c in choices.group(1).split(",")] if choices
                      else samples.get(f"{endpoint}:{name}", samples.get(name)))
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
        reply_templates.save(db.session, None, "report_loss", "挂失已受理", "您的号码已挂失停机。", leader, now,
                             process="business_acceptance", kinds=["report_loss"])
        db.session.commit()
        db.session.remove()
        db.engine.dispose()
    return [(r.rule, r.endpoint, sorted(r.arguments)) for r in app.url_map.iter_rules()
            if "GET" in (r.methods or ()) and r.endpoint != "static"]


def _known(url: str, problem: str) -> str | None:
    """Whom a finding was reported to, if it is a known one."""
    return next((owner for (path, kind), owner in KNOWN.items()
                 if url.startswith(path) and problem.startswith(kind)), None)


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
        known = _known(url, problem)
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


# Chinese in the English UI: a run of ideographs is UI text unless it is data (a customer's name, a
# description, a group, a diagram's step names — whatever the database holds).
CHINESE_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
ABBREVIATIONS = re.compile(rf"{_L}(?:e\.g|i\.e|etc)\.")  # English prose, not codes


def _data_text(db_urls: list[str]) -> str:
    """Every text the databases hold (columns and JSON values; the product's and the demo billing
    system's), and what administrators and modelers keep in files (the shipped calendars, the
    diagrams' templates), joined: Chinese found in it is data."""
    parts = [path.read_text(encoding="utf-8") for pattern in ("slas/calendars/*.json", "bpmn/templates/*.bpmn")
             for path in sorted(ROOT.glob(pattern))]

    def collect(value: Any) -> None:
        if isinstance(value, str):
            if CHINESE_RUN.search(value):
                parts.append(value)
                if value[:1] in "{[":
                    try:
                        collect(json.loads(value))
                    except ValueError:
                        pass
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for url in db_urls:
        engine = create_engine(url, **engine_options(url))
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                columns = [c for c in table.columns if isinstance(c.type, (String, Text, JSON))]
                if columns:
                    for row in conn.execute(select(*columns)):
                        for value in row:
                            collect(value)
        engine.dispose()
    return "\n".join(parts)


def _chinese_problems(body: str, data: str) -> list[str]:
    return [f"Chinese: {run!r}" for run in sorted(set(CHINESE_RUN.findall(body))) if run not in data]


@pytest.mark.slow
def test_every_page_in_english(browser, server, db_url, tmp_path, monkeypatch):
    """The same pages in English (the user's language switch), each opened by the first role that may
    see it: no raw dict or JSON, no internal code, no Chinese UI text (data may be Chinese)."""
    data_dir = tmp_path / "data"
    monkeypatch.setenv("KEFU_DATA_DIR", str(data_dir))
    urls = _urls(_prepare(db_url, data_dir), _samples(db_url))
    data = _data_text([db_url, os.environ.get("KEFU_BILLING_URL") or f"sqlite:///{data_dir / 'billing.db'}"])
    shots = _artifacts(tmp_path)
    sweep = Sweep()
    refusal_checked = False
    for who in USERS:
        todo = [(e, u) for e, u in urls if u not in sweep.seen]
        if not todo:
            break
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="en-US")
        context.set_default_timeout(20_000)
        try:
            page = context.new_page()
            login(page, server, who)
            page.goto(server + "/lang/en")
            for _endpoint, url in todo:
                response = page.goto(server + url)
                status = response.status if response is not None else 0
                where = f"{url} as {who} in English ({status})"
                if status >= 500:
                    sweep.findings.append(f"{where}: server error")
                    continue
                if status != 200 and refusal_checked:
                    continue  # one refusal page is enough; the Chinese sweep checks them all
                refusal_checked = refusal_checked or status != 200
                body = page.evaluate(PAGE_TEXT)
                problems = [p for p in _visible_problems(ABBREVIATIONS.sub(" ", body)) if not p.startswith("English")]
                for problem in problems + _chinese_problems(body, data):
                    known = _known(url, problem)
                    if known:
                        sweep.known.add(f"{url} in English: {known}")
                    else:
                        sweep.findings.append(f"{where}: {problem}")
                page.screenshot(path=str(shots / f"en-{who}-{_slug(url)}-{status}.png"), full_page=True)
                sweep.pages += 1
                if status == 200:
                    sweep.seen.setdefault(url, []).append(who)  # by URL: each is opened once
            page.goto(server + "/lang/zh_CN")  # the account's language back as the demo had it
        finally:
            context.close()
    print(f"\nEnglish page sweep: {sweep.pages} page views of {len(urls)} pages; screenshots in {shots}")
    for line in sorted(sweep.known):
        print(f"English page sweep, known and reported: {line}")
    unseen = sorted({u for _e, u in urls} - set(sweep.seen))
    report = "\n".join(sorted(set(sweep.findings)))
    assert not unseen, f"pages no demo role could open: {unseen}"
    assert not sweep.findings, f"{len(set(sweep.findings))} problems:\n{report}"


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

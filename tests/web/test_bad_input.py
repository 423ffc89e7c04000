"""Bad input is a clear 4xx, never a 500: JSON nested beyond reason, lone surrogates, non-object
bodies, out-of-range numbers and ids, a template that would loop for ever (issue 17, item 4)."""

from __future__ import annotations

import pytest

from tests.conftest import INTAKE

DEEP = "[" * 5000 + "]" * 5000
JSON_POSTS = ["/api/v1/processes/complaint/instances", "/api/v1/callbacks", "/api/v1/calls/inbound",
              "/api/v1/tasks/1/complete", "/api/v1/instances/1/migrate", "/api/v1/dunning/rounds"]


@pytest.mark.parametrize("path", JSON_POSTS)
@pytest.mark.parametrize("body", [DEEP, '{"data": {"description": "\\ud800"}}', '{"data": {"description": "a\\u0000b"}}', "[1, 2]", '"text"', "true",
                                  '{"data": ' + "[" * 3000 + "]" * 3000 + "}"])
def test_json_posts_answer_bad_bodies_with_a_4xx_json_error(client, token, path, body):
    answer = client.post(path, data=body, headers={**token("admin"), "Content-Type": "application/json"})
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.get_data(as_text=True)[:300])
    assert answer.get_json()["error"]


@pytest.mark.parametrize("path", ["/api/v1/instances/99999999999999999999999", "/api/v1/tasks/18446744073709551616",
                                  "/api/v1/instances/9223372036854775807", "/api/v1/tasks/2147483648",
                                  "/tasks/99999999999999999999999", "/cases/99999999999999999999999"])
def test_ids_beyond_64_bits_are_not_found(client, token, path):
    client.post("/login", data={"username": "admin", "password": "kefu-demo"})
    answer = client.get(path, headers=token("admin") if path.startswith("/api") else {})
    assert answer.status_code == 404


@pytest.mark.parametrize("version", [2**63, True, "2", -1])
def test_migrate_refuses_odd_versions(client, token, version):
    answer = client.post("/api/v1/instances/1/migrate", json={"version": version}, headers=token("admin"))
    assert 400 <= answer.status_code < 500


def test_a_surrogate_in_a_case_is_refused_not_stored(client, token):
    answer = client.post("/api/v1/processes/complaint/instances",
                         data='{"data": {"customer_phone": "13800000009", "description": "\\udc00坏"}}',
                         headers={**token("agent1"), "Content-Type": "application/json"})
    assert answer.status_code in (400, 422)
    ok = client.post("/api/v1/processes/complaint/instances", json={"data": INTAKE}, headers=token("agent1"))
    assert ok.status_code == 201


@pytest.mark.parametrize("query", ["/api/v1/definitions/complaint/bpmn?version=99999999999999999999",
                                   "/api/v1/instances/1/migration?version=99999999999999999999",
                                   "/inbox?page=99999999999999999999"])
def test_numbers_in_queries_beyond_64_bits_are_ignored_or_refused(client, token, query):
    client.post("/login", data={"username": "admin", "password": "kefu-demo"})
    answer = client.get(query, headers=token("admin") if query.startswith("/api") else {})
    assert answer.status_code < 500


@pytest.mark.parametrize("body", ["{% for i in range(10**9) %}x{% endfor %}", '{{ "x" * 10**9 }}',
                                  "{{ 10**10**10 }}", "{{ [1] * 10**9 }}",
                                  "{{ ('%01000000000d'|format(0))|length }}", "{{ '%01000000000d' % 0 }}",
                                  "{{ ('a'|center(1000000000))|length }}",
                                  ("{% set ns = namespace(s='x') %}{% for i in range(28) %}{% set ns.s = ns.s ~ ns.s %}"
                                  "{% endfor %}{{ ns.s|length }}"),
                                  "{% for i in range(100000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}x",
                                  ("{% set ns = namespace(x=10**64) %}{% for i in range(22) %}{% set ns.x = ns.x * ns.x %}"
                                  "{% endfor %}{{ ns.x > 1 }}")])
def test_an_sms_template_that_would_not_end_is_refused_at_once(body):
    from processes.sms_templates import check_template

    assert "cannot be rendered" in check_template("complaint_accepted", body)


def test_full_width_digits_are_not_a_phone_number(client, token, billing):
    answer = client.get("/api/v1/customers/１３８００１３８０００?reason=complaint", headers=token("agent1"))
    assert answer.status_code in (400, 422)


def test_a_nul_character_in_a_query_or_form_is_refused(client, token):
    assert client.get("/api/v1/instances?status=%00", headers=token("agent1")).status_code == 400
    assert client.post("/login", data={"username": "agent1\x00", "password": "x"}).status_code == 400


BAD_QUERIES = [
    {name: "99999999999999999999" for name in ("page", "call", "edit", "days", "version", "id", "limit",
                                                 "offset", "after", "group", "holder", "priority", "year",
                                                 "task", "instance", "show", "user")},
    {name: "4294967296" for name in ("page", "call", "edit", "days", "version", "id", "limit", "offset",
                                     "after", "group", "holder", "priority", "task", "instance", "user")},
    {name: "-9223372036854775809" for name in ("page", "call", "edit", "days", "limit", "offset", "after")},
    {"page": "abc", "call": "١٢٣", "edit": "1e9", "days": "x", "from": "99999-99-99", "to": "0000-00-00",
     "since": "2026-13-45", "until": "9999-12-31", "by": "nothing", "sort": "id;drop", "month": "2026-99"},
]


@pytest.mark.slow
def test_every_page_answers_bad_query_numbers_with_a_4xx_or_ignores_them(app):
    """Every page (GET, outside the API, which the OpenAPI fuzzer covers) as an administrator and
    as an agent, with numbers beyond any integer, negative, non-ASCII or not numbers at all, and
    impossible dates in its query string: never a 500."""
    from urllib.parse import urlencode

    from tests.web.test_access_matrix import NOT_REQUESTED, _url

    browsers = {}
    for username in ("admin", "agent1", "manager1"):
        browser = app.test_client()
        assert browser.post("/login", data={"username": username, "password": "kefu-demo"}).status_code == 302
        browsers[username] = browser
    failures, asked = [], 0
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if ("GET" not in rule.methods or rule.rule.startswith(("/api/", "/static", "/logout"))
                or rule.endpoint in NOT_REQUESTED):
            continue
        for username, browser in browsers.items():
            for query in BAD_QUERIES:
                url = f"{_url(rule)}?{urlencode(query)}"
                answer = browser.get(url)
                asked += 1
                if answer.status_code >= 500:
                    failures.append((answer.status_code, username, url))
                answer.close()
    assert failures == [], "\n".join(map(str, failures))
    assert asked > 300  # the sweep really ran


def test_a_number_the_database_cannot_hold_is_the_requests_fault_wherever_it_slips_through(app):
    """The safety net behind the request layer: a view that lets such a number reach the database
    answers 400 in words (JSON under /api/)."""
    from engine.models import ProcessInstance
    from web.extensions import db

    def slipped():
        return str(db.session.get(ProcessInstance, 10**20))

    app.add_url_rule("/slipped", "slipped", slipped)
    app.add_url_rule("/api/v1/slipped", "api_slipped", slipped)
    browser = app.test_client()
    page = browser.get("/slipped")
    assert page.status_code == 400 and "超出了系统能保存的范围" in page.get_data(as_text=True)
    answer = browser.get("/api/v1/slipped")
    assert answer.status_code == 400 and answer.get_json()["error"] == "out_of_range"


@pytest.mark.parametrize("url", ["/reports/complaints?from=bad&by=zz", "/reports/complaints.xlsx?from=bad",
                                 "/reports/acceptance.xlsx?from=bad", "/reports/roaming.xlsx?from=2026-13-01",
                                 "/reports/dunning.xlsx?to=x"])
def test_a_bad_report_period_is_refused_on_a_page_in_words(app, url):
    browser = app.test_client()
    browser.post("/login", data={"username": "manager1", "password": "kefu-demo"})
    answer = browser.get(url)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and answer.mimetype == "text/html"
    assert "统计周期或分组无效" in page and "YYYY-MM-DD" not in page and "one of" not in page


def test_the_alerts_page_does_not_echo_a_posted_view_into_its_redirect(app):
    """A form's ``show`` went into the Location header as it was: 100,000 characters made a
    header no client reads (the auditor's LineTooLong)."""
    browser = app.test_client()
    browser.post("/login", data={"username": "admin", "password": "kefu-demo"})
    answer = browser.post("/escalations/1/urge", data={"note": "x" * 100_000, "show": "x" * 100_000})
    assert answer.status_code == 302 and len(answer.headers["Location"]) < 100
    kept = browser.post("/escalations/1/acknowledge", data={"show": "unacknowledged"})
    assert kept.headers["Location"].endswith("show=unacknowledged")


def test_a_number_with_a_newline_after_it_is_not_a_phone_number(app, client, token, billing):
    """Python's ``$`` matches before a final newline (JSON Schema's does not): the auditor started
    complaints and acceptances with "13800000001\\n" stored as the number."""
    for key, data in (("complaint", {**INTAKE, "customer_phone": "13800000001\n"}),
                      ("complaint", {**INTAKE, "contact_phone": "13800000009\n"}),
                      ("business_acceptance", {"customer_phone": "13800000001\n"})):
        answer = client.post(f"/api/v1/processes/{key}/instances", json={"data": data}, headers=token("agent1"))
        assert answer.status_code == 422, (key, answer.get_json())
    assert client.get("/api/v1/customers/13800000001%0A?reason=complaint", headers=token("agent1")).status_code in (400, 404, 422)
    browser = app.test_client()
    browser.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    assert browser.get("/customers/13800000001%0A?reason=complaint").status_code in (400, 404, 422)
    # The lookup form trims what was typed, as a person means it, and opens the clean number.
    typed = browser.get("/customers?phone=13800000001%0A&reason=complaint")
    assert typed.status_code == 302 and typed.headers["Location"].split("?")[0].endswith("/customers/13800000001")


def test_every_validating_pattern_ends_at_the_end_of_the_text():
    from connectors.billing import codes
    from connectors.pbx.operations import _PHONE as PBX_PHONE
    from engine import administration
    from engine.forms import _ecma_pattern
    from web import customer_lookup

    for pattern, good in ((codes.NUMBER, "13800000001"), (codes.PASSWORD, "123456"), (PBX_PHONE, "13800000001"),
                          (administration.USERNAME, "agent1"), (customer_lookup.PHONE, "13800000001"),
                          (_ecma_pattern(r"^1\d{10}$"), "13800000001")):
        assert pattern.match(good) and not pattern.match(good + "\n"), pattern.pattern

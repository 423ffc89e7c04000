"""Taking a request, the agent sees the caller's earlier cases of every process: a number with
complaints does not read as a number without history on the business-acceptance page."""

from __future__ import annotations

from tests.conftest import INTAKE


def test_the_acceptance_start_page_lists_the_callers_complaints(client, token):
    case = client.post("/api/v1/processes/complaint/instances", headers=token("agent1"),
                       json={"data": {**INTAKE, "customer_phone": "13900004444"}}).get_json()
    client.post("/login", data={"username": "agent1", "password": "kefu-demo"})
    reference = client.get(f"/api/v1/instances/{case['id']}", headers=token("agent1")).get_json()["reference"]
    fragment = client.get("/cases/history", query_string={"key": "business_acceptance",
                                                          "customer_phone": "13900004444"}).get_data(as_text=True)
    assert reference in fragment and "该号码没有历史工单" not in fragment
    assert "该号码没有历史工单" in client.get("/cases/history", query_string={
        "key": "business_acceptance", "customer_phone": "13900005555"}).get_data(as_text=True)

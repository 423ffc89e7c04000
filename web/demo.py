"""Demo data for ``make run``: groups, the demo accounts (password ``kefu-demo``) and a few
complaints in different states, one of them already overdue so that escalations show at once.

Only ``kefu demo`` / ``kefu serve --demo`` load it; a production database never gets these users.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from engine.models import open_tasks_of_instance
from engine.people import Group, User, user_by_name
from engine.runtime import Engine

PASSWORD = "kefu-demo"

GROUPS = [  # code, name, English name: the groups the bundled processes route to (lanes, variables)
    ("intake", "投诉受理组", "Complaint intake"),
    ("quality", "质检组", "Quality check"),
    ("dept", "责任部门", "Responsible departments"),
    ("network", "网络部", "Network department"),
    ("billing", "计费部", "Billing department"),
    ("sales", "营业部", "Sales department"),
    ("dunning", "催费组", "Dunning"),
]
# City centres (地市中心): code, name, English name, city — their agents are the remote seats
# (远程坐席) that complaints needing local service are transferred to.
CITY_GROUPS = [("hz_city", "杭州地市中心", "Hangzhou city center", "杭州")]

USERS = [  # username, name, roles, groups, leads, phone, extension
    ("agent1", "坐席一 王芳", "agent", ["intake"], [], "13800138101", "8001"),
    ("agent2", "坐席二 李强", "agent", ["intake"], [], "13800138102", "8002"),
    ("leader1", "班长 张敏", "agent,leader", ["intake", "quality"], ["intake", "quality"],
     "13800138103", "8101"),
    ("net1", "网络部 赵磊", "handler", ["network"], [], "13800138104", None),
    ("netlead1", "网络部主管 孙涛", "handler,leader", ["network"], ["network"], "13800138105", None),
    ("bill1", "计费部 周静", "handler", ["billing"], [], "13800138106", None),
    ("billlead1", "计费部主管 吴刚", "handler,leader", ["billing"], ["billing"], "13800138107", None),
    ("sales1", "营业部 郑丽", "handler,leader", ["sales"], ["sales"], "13800138108", None),
    ("dun1", "催费组 何静", "agent,leader", ["dunning"], ["dunning"], "13800138110", "8003"),
    ("hzseat1", "杭州远程坐席 钱多", "agent", ["hz_city"], [], "13800138111", "8004"),
    ("hzlead1", "杭州地市中心主管 冯博", "agent,leader", ["hz_city"], ["hz_city"], "13800138112", None),
    ("manager1", "中心经理 陈刚", "manager", [], [], "13800138109", None),
    ("analyst1", "流程分析师 林芳", "analyst", [], [], None, None),
    ("admin", "系统管理员", "admin", [], [], None, None),
]

ACCOUNTS = [(u[0], u[1], u[2]) for u in USERS]


def ensure_groups(session: Session, *, demo: bool = True) -> dict[str, Group]:
    """The groups the bundled diagrams' lanes name (``GROUPS``: what ``kefu init`` creates for a
    real centre, ``demo=False``) and, for the demo and tests, the demo city center (created if
    missing). A real centre's city centers are its own: administrators create them."""
    groups = {g.code: g for g in session.query(Group)}
    for code, name, name_en in GROUPS:
        if code not in groups:
            groups[code] = Group(code=code, name=name, name_en=name_en)
            session.add(groups[code])
    for code, name, name_en, city in CITY_GROUPS if demo else ():
        if code not in groups:
            groups[code] = Group(code=code, name=name, name_en=name_en, level="city", city=city)
            session.add(groups[code])
    session.flush()
    return groups


def load_demo(session: Session, engine: Engine, now: datetime) -> bool:
    """Create the demo accounts and sample cases once; False when they already exist. The demo
    billing database is seeded too (once, and only in billing demo mode; see web/demo_billing.py)."""
    from flask import current_app

    from .demo_billing import seed_demo_billing

    seed_demo_billing(current_app)
    if user_by_name(session, "admin") is not None:
        return False
    users = create_accounts(session, now)
    _sample_cases(session, engine, users, now)
    session.commit()
    return True


def create_accounts(session: Session, now: datetime) -> dict[str, User]:
    """The demo groups and accounts (no cases); tests use them too."""
    groups = ensure_groups(session)
    users: dict[str, User] = {}
    for username, name, roles, member_of, leads, phone, extension in USERS:
        user = User(username=username, display_name=name, roles=roles, phone=phone,
                    extension=extension, created_at=now, active=True)
        user.set_password(PASSWORD)
        user.groups = [groups[c] for c in member_of]
        session.add(user)
        users[username] = user
        session.flush()
        for code in leads:
            groups[code].leader_id = user.id
    session.flush()
    return users


def _complete_first(session: Session, engine: Engine, instance_id: int, user: User, data: dict,
                    now: datetime) -> None:
    task = open_tasks_of_instance(session, instance_id)[0]
    engine.complete_task(session, task.id, data, actor=user, now=now)


def _sample_cases(session: Session, engine: Engine, users: dict[str, User], now: datetime) -> None:
    intake = {"customer_phone": "13800000001", "complainant_name": "刘先生",
              "contact_phone": "13800000001", "channel": "phone", "category": "billing",
              "description": "上月话费中出现一笔未订购的增值业务费用 10 元。", "request": "退还费用"}
    # An earlier complaint of the same customer, closed: shown as history during intake.
    t0 = now - timedelta(days=20)
    old = engine.start(session, "complaint", intake, actor=users["agent1"], now=t0)
    _complete_first(session, engine, old.id, users["agent1"],
                    {"resolution": "answer_now", "first_reply": "已核实为误订，已为客户退订并说明。"}, t0)
    # Dispatched to the network department 30 hours ago: its 24-hour limit is overrun.
    t1 = now - timedelta(hours=30)
    late = engine.start(session, "complaint", {
        **intake, "category": "network", "description": "家中室内信号差，经常掉话。",
        "request": "尽快改善信号"}, actor=users["agent1"], now=t1)
    _complete_first(session, engine, late.id, users["agent1"], {
        "resolution": "dispatch", "first_reply": "已派网络部处理，24小时内回复。", "department": "network",
        "final_reply_due": (t1 + timedelta(hours=24)).isoformat()}, t1)
    # New, waiting for agent2's first reply (20 minutes old).
    engine.start(session, "complaint", {
        "customer_phone": "13800000002", "complainant_name": "陈女士", "contact_phone": "13900000002",
        "channel": "www", "category": "service", "description": "营业厅工作人员态度冷淡。",
        "request": "希望改进服务"}, actor=users["agent2"], now=now - timedelta(minutes=20))
    # Handled by billing, waiting for the quality check.
    t3 = now - timedelta(hours=3)
    qc = engine.start(session, "complaint", {
        "customer_phone": "13800000003", "complainant_name": "黄先生", "contact_phone": "13800000003",
        "channel": "phone", "category": "billing", "description": "套餐外流量计费异常。",
        "request": "核实并退费"}, actor=users["agent1"], now=t3)
    _complete_first(session, engine, qc.id, users["agent1"], {
        "resolution": "dispatch", "first_reply": "已转计费部核实。", "department": "billing",
        "final_reply_due": (t3 + timedelta(hours=24)).isoformat()}, t3)
    _complete_first(session, engine, qc.id, users["bill1"], {
        "handling_result": "核实计费有误，应退还流量费 25 元。", "cause": "billing_error",
        "refund_due": True, "refund_amount": 25}, now - timedelta(hours=1))

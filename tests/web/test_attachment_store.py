"""Attachments in an S3-compatible store (KEFU_ATTACHMENT_STORE=s3://bucket/prefix), tested against
a real S3 server on loopback (tests/peers/s3_peer.py): upload and download through the pages, the
size limit and refused types, who may read, the store down on upload and download, an object gone
missing, and a row that cannot be written taking its object back."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from sqlalchemy import event, select

from tests.peers.s3_peer import S3Peer, s3_peer  # noqa: F401 - the fixture
from tests.web.test_desk_tools import PDF, _complaint, _docx
from tests.web.test_pages import Browser


def _text(response) -> str:
    return response.get_data(as_text=True)


@pytest.fixture
def s3_app(app, s3_peer: S3Peer):  # noqa: F811
    app.config.update(WTF_CSRF_ENABLED=True, KEFU_ATTACHMENT_MB=3,
                      KEFU_ATTACHMENT_STORE=f"s3://{s3_peer.bucket}/cases", KEFU_S3_ENDPOINT=s3_peer.endpoint,
                      KEFU_S3_ACCESS_KEY=s3_peer.access_key, KEFU_S3_SECRET_KEY=s3_peer.secret_key)
    return app


def _upload(agent: Browser, case_id: int, task_url: str, name: str, content: bytes, note: str = ""):
    page = agent.get(task_url)
    return agent.client.post(f"/cases/{case_id}/attachments", content_type="multipart/form-data", data={
        "csrf_token": agent.token(_text(page)), "next": task_url, "file": (io.BytesIO(content), name),
        "file_note": note})


def _rows(app) -> list:
    from processes.attachments import CaseAttachment
    from web.extensions import db

    with app.app_context():
        rows = list(db.session.scalars(select(CaseAttachment).order_by(CaseAttachment.id)))
        db.session.expunge_all()
        return rows


def test_files_go_to_the_bucket_and_come_back_as_downloads_to_those_who_may_see_the_case(s3_app, s3_peer):  # noqa: F811
    agent = Browser(s3_app, "agent1")
    case_id, task_url = _complaint(agent)
    assert _upload(agent, case_id, task_url, "话单截图.pdf", PDF, note="客户提供的三月话单").status_code == 302
    assert _upload(agent, case_id, task_url, "合同.docx", _docx()).status_code == 302

    rows = _rows(s3_app)
    assert [r.kind for r in rows] == ["pdf", "docx"]
    assert s3_peer.keys() == sorted(f"cases/{r.stored_as}" for r in rows)
    stored = s3_peer.client().get_object(Bucket=s3_peer.bucket, Key=f"cases/{rows[0].stored_as}")
    assert stored["Body"].read() == PDF and stored["ContentType"] == "application/pdf"
    assert not (Path(s3_app.config["KEFU_DATA_DIR"]) / "attachments").exists()  # nothing in the data dir
    page = _text(agent.get(task_url))
    assert "话单截图.pdf" in page and "合同.docx" in page
    assert "话单截图.pdf：客户提供的三月话单" in page  # what was written about the file: an internal note

    download = agent.client.get(f"/attachments/{rows[0].id}")
    assert download.status_code == 200 and download.data == PDF
    assert download.mimetype == "application/pdf"
    assert download.headers["Content-Disposition"].startswith("attachment;")
    assert download.headers["X-Content-Type-Options"] == "nosniff"
    assert download.headers["Cache-Control"] == "private, no-store"

    # Refused before anything is stored: the bucket is unchanged, the page says why in Chinese.
    for name, content, words in [("virus.exe", b"MZ\x90\x00" + b"\x00" * 100, "只接受"),
                                 ("macro.docx", _docx(macro=True), "只接受"),
                                 ("notes.pdf", "这是一段文字".encode(), "名称与内容不符"),
                                 ("too-big.pdf", PDF + b"0" * (3 * 1024 * 1024), "3 MB")]:
        response = _upload(agent, case_id, task_url, name, content, note="看这个")
        assert response.status_code == 302, name
        page = _text(agent.get(task_url))
        assert words in page and name not in page, name
        assert 'value="看这个"' in page, name  # what was written about the file is offered again
    assert s3_peer.keys() == sorted(f"cases/{r.stored_as}" for r in rows)
    assert len(_rows(s3_app)) == 2

    # Someone who may not see the case cannot read its files, from the bucket either.
    outsider = Browser(s3_app, "bill1")
    assert outsider.client.get(f"/attachments/{rows[0].id}").status_code == 404


def test_the_store_down_on_upload_is_a_chinese_refusal_that_keeps_the_note(s3_app, s3_peer):  # noqa: F811
    from engine.models import AuditEvent
    from web.extensions import db

    agent = Browser(s3_app, "agent1")
    case_id, task_url = _complaint(agent)
    s3_peer.stop()
    started = time.monotonic()
    response = _upload(agent, case_id, task_url, "话单.pdf", PDF, note="客户坚称三月多扣费")
    took = time.monotonic() - started
    assert response.status_code == 302
    page = _text(agent.get(task_url))
    assert "文件存储无响应，文件未能附上" in page
    assert 'value="客户坚称三月多扣费"' in page  # offered again in the upload form
    assert took < 15  # a refusal in seconds, not minutes of retries
    assert _rows(s3_app) == []
    with s3_app.app_context():
        kinds = set(db.session.scalars(select(AuditEvent.kind).where(AuditEvent.instance_id == case_id)))
    assert "attachment_added" not in kinds and "internal_note" not in kinds
    assert "客户坚称三月多扣费" not in _text(agent.get(task_url))  # kept for one try, not forever


def test_the_store_down_or_the_object_gone_on_download_is_an_error_page_not_a_500(s3_app, s3_peer):  # noqa: F811
    agent = Browser(s3_app, "agent1")
    case_id, task_url = _complaint(agent)
    for name in ("a.pdf", "b.pdf", "c.pdf"):
        assert _upload(agent, case_id, task_url, name, PDF).status_code == 302
    gone, changed, kept = _rows(s3_app)
    client = s3_peer.client()
    client.delete_object(Bucket=s3_peer.bucket, Key=f"cases/{gone.stored_as}")
    client.put_object(Bucket=s3_peer.bucket, Key=f"cases/{changed.stored_as}", Body=b"%PDF-1.4 other")

    for row in (gone, changed):
        response = agent.client.get(f"/attachments/{row.id}")
        assert response.status_code == 404, row.filename
        assert "文件存储中找不到该文件" in _text(response) and row.filename in _text(response)
    assert agent.client.get(f"/attachments/{kept.id}").data == PDF
    missing = agent.client.get(f"/attachments/{gone.id}", headers={"Accept": "application/json"})
    assert missing.status_code == 404 and missing.get_json()["error"] == "attachment_missing"

    s3_peer.stop()
    response = agent.client.get(f"/attachments/{kept.id}")
    assert response.status_code == 503
    assert "文件存储无响应" in _text(response) and "c.pdf" in _text(response)
    assert "Traceback" not in _text(response)
    assert "c.pdf" in _text(agent.get(task_url))  # the case page itself does not need the store


def test_a_row_that_cannot_be_written_takes_its_object_back(s3_app, s3_peer):  # noqa: F811
    from engine.clock import utcnow
    from engine.models import ProcessInstance
    from engine.people import user_by_name
    from processes import attachments
    from web.case_tools import attachment_store
    from web.extensions import db

    agent = Browser(s3_app, "agent1")
    case_id, task_url = _complaint(agent)

    def refuse_the_row(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("INSERT INTO CASE_ATTACHMENTS"):
            raise RuntimeError("the database refused the row")

    with s3_app.test_request_context():
        store = attachment_store()
        instance = db.session.get(ProcessInstance, case_id)
        event.listen(db.engine, "before_cursor_execute", refuse_the_row)
        try:
            with pytest.raises(RuntimeError):  # the row's flush fails inside attachments.add
                attachments.add(db.session, store, instance, "a.pdf", PDF, user_by_name(db.session, "agent1"),
                                utcnow())
        finally:
            event.remove(db.engine, "before_cursor_execute", refuse_the_row)
        db.session.rollback()
    assert s3_peer.keys() == [] and _rows(s3_app) == []

    # The row is written but the commit fails: the page's upload deletes the object again.
    from sqlalchemy.orm import Session

    def refuse_the_commit(session):  # the request's commit, not the savepoint's inside attachments.add
        if not session.in_nested_transaction() and any(type(o).__name__ == "CaseAttachment" for o in session.identity_map.values()):
            raise RuntimeError("the commit failed")

    event.listen(Session, "before_commit", refuse_the_commit)
    try:
        with pytest.raises(RuntimeError):
            _upload(agent, case_id, task_url, "b.pdf", PDF)
    finally:
        event.remove(Session, "before_commit", refuse_the_commit)
    assert s3_peer.keys() == [] and _rows(s3_app) == []


def test_a_file_missing_from_the_data_dir_is_an_error_page(app):
    app.config["WTF_CSRF_ENABLED"] = True
    agent = Browser(app, "agent1")
    case_id, task_url = _complaint(agent)
    assert _upload(agent, case_id, task_url, "a.pdf", PDF).status_code == 302
    row = _rows(app)[0]
    (Path(app.config["KEFU_DATA_DIR"]) / "attachments" / row.stored_as).unlink()
    response = agent.client.get(f"/attachments/{row.id}")
    assert response.status_code == 404 and "文件存储中找不到该文件" in _text(response)


def test_the_store_setting_is_checked_at_start(monkeypatch, tmp_path):
    from processes.attachment_store import DirectoryStore, S3Settings, from_settings, s3_settings
    from web.config import from_environment

    settings = s3_settings("s3://kefu-files/cases/2026/", endpoint="http://127.0.0.1:9000")
    assert (settings.bucket, settings.prefix) == ("kefu-files", "cases/2026/")
    assert s3_settings("s3://kefu-files").prefix == ""
    assert isinstance(from_settings("", Path("data")), DirectoryStore)
    with pytest.raises(ValueError):
        S3Settings(bucket="b", addressing="sideways")
    monkeypatch.setenv("KEFU_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("KEFU_ATTACHMENT_STORE", "http://127.0.0.1:9000/kefu-files")
    with pytest.raises(ValueError, match="s3://bucket/prefix"):
        from_environment()


def test_a_missing_bucket_is_the_store_unavailable_and_only_a_missing_key_is_a_missing_object(s3_peer):  # noqa: F811
    from processes.attachment_store import ObjectMissing, S3Settings, S3Store, StoreUnavailable

    def store(bucket: str) -> S3Store:
        return S3Store(S3Settings(bucket=bucket, prefix="p/", endpoint=s3_peer.endpoint,
                                  access_key=s3_peer.access_key, secret_key=s3_peer.secret_key))

    key = "0123456789abcdef0123456789abcdef"
    absent = store("no-such-bucket")
    for action in (lambda: absent.put(key, PDF, "application/pdf"), lambda: absent.get(key)):
        with pytest.raises(StoreUnavailable):
            action()
    present = store(s3_peer.bucket)
    with pytest.raises(ObjectMissing):
        present.get(key)
    present.put(key, PDF, "application/pdf")
    assert present.get(key) == PDF and s3_peer.keys() == [f"p/{key}"]
    present.delete(key)
    present.delete(key)  # deleting what is gone is not an error
    assert s3_peer.keys() == []
    with pytest.raises(ValueError):
        present.get("../secret_key")  # keys are the store's own, never a path

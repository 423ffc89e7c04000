"""Append-only rows of a step (audit events, SLA clocks) written as batched Core inserts.

A step adds rows that nothing updates in that step: its audit events, the SLA clock of a task it
opens. Through the ORM's unit of work each costs far more CPU than its insert, so the engine queues
them on the session and writes them with one prebuilt ``INSERT`` per table (an executemany):

* after the session's next flush (then the tasks they name, opened in the same step, have ids);
* before a query while autoflush is on, as the ORM would flush a pending object, so that a
  query in the same transaction sees them;
* before commit.

A step may also gather set-based work (:func:`batch`), written at the same moments just before the
rows: e.g. the SLA clocks of every step it closed are stopped by one ``UPDATE``.

A rollback drops them with the rest of the transaction; so does a transaction that ends without
committing. The hooks are installed on first use (and by ``unit_of_work.install``), so a queued
row can never be silently lost for want of a composition root.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from sqlalchemy import Table, bindparam, cast, event, insert, inspect, select, union_all
from sqlalchemy.orm import Session, SessionTransaction

_PENDING = "kefu.appends"
_EFFECTS = "kefu.appends.before"
_installed = False
# One prebuilt insert per table: its compiled form is cached with it.
_INSERTS: dict[Table, Any] = {}
# On PostgreSQL up to this many queued rows become one multi-row statement (a step has a handful).
MAX_CTE_ROWS = 200
# Statements built for PostgreSQL's one-statement write, by shape (few: a step has few shapes).
_SHAPES: dict[tuple[Any, ...], Any] = {}
_KEPT: dict[tuple[Any, ...], tuple[Any, ...]] = {}
MAX_SHAPES = 256


class _Row:
    """A queued row; ``task`` (a HumanTask, maybe not flushed yet) gives ``task_id`` when written."""

    __slots__ = ("savepoint", "table", "task", "values")

    def __init__(self, table: Table, values: Any, task: Any, savepoint: SessionTransaction | None) -> None:
        self.table, self.values, self.task, self.savepoint = table, values, task, savepoint


def append(session: Session, table: Table, values: dict[str, Any], *, task: Any = None) -> None:
    """Queue a row of ``table`` (every column the table needs, the key excepted) in the session's
    transaction; with ``task``, its ``task_id`` is that task's id once flushed."""
    savepoint = _begin(session).get_nested_transaction()
    session.info.setdefault(_PENDING, []).append(_Row(table, values, task, savepoint))


def append_object(session: Session, obj: Any, *, task: Any = None) -> None:
    """Queue a new mapped object (never added to the session) as a row: the columns set on it
    when the row is written, so the caller may still change it until then."""
    append(session, inspect(obj).mapper.local_table, obj, task=task)


def _values_of(obj: Any) -> dict[str, Any]:
    state = inspect(obj)
    return {prop.columns[0].key: state.dict[prop.key] for prop in state.mapper.column_attrs
            if prop.key in state.dict}


# A batch's statement: (statement, its parameters, what to do with its result — None when nothing
# reads it). Parameter names must not clash with another batch's.
Statement = tuple[Any, dict[str, Any], "Callable[[Any], None] | None"]


class Batch(Protocol):
    """Set-based work a step gathers and writes as few statements (e.g. stopping the SLA clocks
    of every step it closed)."""

    def statements(self) -> list[Statement]: ...


B = TypeVar("B", bound=Batch)


def batch(session: Session, key: object, factory: Callable[[], B]) -> B:
    """The transaction's batch ``key`` (made by ``factory`` on first use): written when the queued
    rows are next written, before them; dropped with them on rollback."""
    _begin(session)
    batches = session.info.setdefault(_EFFECTS, {})
    found = batches.get(key)
    if found is None:
        found = batches[key] = factory()
    return found


def pending(session: Session) -> int:
    """How many rows wait to be written (for tests)."""
    return len(session.info.get(_PENDING, ()))


def write(session: Session) -> None:
    """Write the gathered batches, then the queued rows: one executemany per table, in the order
    the tables were first queued (rows keep their order within a table). On PostgreSQL it is one
    statement: the inserts and the batches whose result nobody reads ride as data-modifying CTEs
    on the statement whose result is read (or on one another). Its snapshot does not see what its
    CTEs write, so a batch never touches the rows inserted with it."""
    batches: dict[object, Batch] = session.info.pop(_EFFECTS, None) or {}
    rows: list[_Row] = session.info.pop(_PENDING, None) or []
    if not batches and not rows:
        return
    by_table: dict[Table, list[dict[str, Any]]] = {}
    for row in rows:
        values = row.values if isinstance(row.values, dict) else _values_of(row.values)
        if row.task is not None:
            values = {**values, "task_id": row.task.id}
        by_table.setdefault(row.table, []).append(values)
    for table, params in by_table.items():
        _same_keys(table, params)
    statements = [statement for gathered in batches.values() for statement in gathered.statements()]
    connection = session.connection()
    if connection.dialect.name == "postgresql" and sum(map(len, by_table.values())) <= MAX_CTE_ROWS:
        inserts = [_multi_row_insert(t, i, values) for i, (t, values) in enumerate(by_table.items())]
        if statements or inserts:
            _as_one(connection, statements + inserts)
        return
    for statement, arguments, then in statements:
        result = connection.execute(statement, arguments)
        if then is not None:
            then(result)
    for table, params in by_table.items():
        prebuilt = _INSERTS.get(table)
        if prebuilt is None:
            prebuilt = _INSERTS[table] = insert(table)
        connection.execute(prebuilt, params)


def _multi_row_insert(table: Table, n: int, rows: list[dict[str, Any]]) -> Statement:
    """A multi-row ``INSERT … VALUES`` of ``rows`` with named parameters, built once per shape
    (table, columns, row count) so that its compiled form is reused."""
    keys = tuple(sorted(rows[0]))
    shape = ("insert", table, keys, len(rows), n)
    statement = _SHAPES.get(shape)
    if statement is None:
        # A multi-row VALUES is never cached by SQLAlchemy: several rows are a UNION ALL of typed
        # parameter rows instead (inserted in that order, so ids keep the queue's order).
        def param(i: int, k: str) -> Any:
            return cast(bindparam(f"kefu_r{n}_{i}_{k}", type_=table.c[k].type), table.c[k].type)

        if len(rows) == 1:
            statement = insert(table).values({k: param(0, k) for k in keys})
        else:
            statement = insert(table).from_select(
                list(keys), union_all(*(select(*(param(i, k).label(k) for k in keys)) for i in range(len(rows)))))
        _remember(shape, statement)
    params = {f"kefu_r{n}_{i}_{k}": row[k] for i, row in enumerate(rows) for k in keys}
    return statement, params, None


def _as_one(connection: Any, statements: list[Statement]) -> None:
    """PostgreSQL: the statements as one, the first whose result is read carrying the others as
    CTEs (a later one whose result is read, or whose parameter names clash, goes on its own). The
    combined statement is built once per shape and reused."""
    carrier = next((s for s in statements if s[2] is not None), statements[0])
    riders: list[Any] = []
    params = dict(carrier[1])
    for statement, values, then in statements:
        if statement is carrier[0]:
            continue
        if then is not None or params.keys() & values.keys():
            result = connection.execute(statement, values)
            if then is not None:
                then(result)
            continue
        riders.append(statement)
        params.update(values)
    shape = ("one", id(carrier[0]), *map(id, riders))
    combined = _SHAPES.get(shape)
    if combined is None:
        ctes = [statement.cte(f"kefu_step_{i}") for i, statement in enumerate(riders)]
        combined = carrier[0].add_cte(*ctes) if ctes else carrier[0]
        _remember(shape, combined, keep=(carrier[0], *riders))
    result = connection.execute(combined, params)
    if carrier[2] is not None:
        carrier[2](result)


def _remember(shape: tuple[Any, ...], statement: Any, keep: tuple[Any, ...] = ()) -> None:
    """Cache a built statement by shape (bounded). ``keep``: the statements whose ids the shape
    names, held so that an id is never reused by another statement while it is cached."""
    if len(_SHAPES) >= MAX_SHAPES:
        _SHAPES.clear()
        _KEPT.clear()
    _SHAPES[shape] = statement
    _KEPT[shape] = keep


def _same_keys(table: Table, params: list[dict[str, Any]]) -> None:
    """One executemany needs the same keys in every row: a key some row lacks gets the column's
    scalar default, or NULL."""
    keys = {k for values in params for k in values}
    for values in params:
        for key in keys - values.keys():
            default = table.c[key].default
            values[key] = default.arg if default is not None and default.is_scalar else None  # type: ignore[attr-defined]


def install() -> None:
    """Install the session hooks that write and drop queued rows (idempotent)."""
    global _installed
    if not event.contains(Session, "after_flush_postexec", _after_flush):
        event.listen(Session, "after_flush_postexec", _after_flush)
        event.listen(Session, "before_commit", _before_commit)
        event.listen(Session, "do_orm_execute", _before_query)
        event.listen(Session, "after_soft_rollback", _drop)
        event.listen(Session, "after_transaction_end", _transaction_ended)
    _installed = True


def _begin(session: Session) -> Session:
    """Queued work belongs to the session's transaction: begin it (as autobegin would; no
    connection is taken yet) so that its rollback or end drops the work. Returns the session
    itself (behind a scoped_session, which does not pass ``in_transaction`` on)."""
    if not _installed:
        install()
    real = session if isinstance(session, Session) else session()
    if not real.in_transaction():
        real.begin()
    return real


def _waiting(session: Session) -> bool:
    return bool(session.info.get(_PENDING) or session.info.get(_EFFECTS))


def _after_flush(session: Session, _flush_context: Any) -> None:
    write(session)


def _before_commit(session: Session) -> None:
    if _waiting(session):
        session.flush()  # the tasks the rows name get their ids
        write(session)


def _before_query(state: Any) -> None:
    session = state.session
    if session.autoflush and _waiting(session) and not session._flushing:
        session.flush()
        write(session)


def _drop(session: Session, previous: SessionTransaction) -> None:
    if previous.nested:  # a savepoint rolled back: only the rows queued inside it go
        rows = session.info.get(_PENDING)
        if rows:
            session.info[_PENDING] = [r for r in rows if not _inside(r.savepoint, previous)]
        return
    session.info.pop(_PENDING, None)
    session.info.pop(_EFFECTS, None)


def _inside(savepoint: SessionTransaction | None, transaction: SessionTransaction) -> bool:
    while savepoint is not None:
        if savepoint is transaction:
            return True
        savepoint = savepoint.parent
    return False


def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outer transaction: queued rows were written or are void
        _drop(session, transaction)

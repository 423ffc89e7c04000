"""The sandbox every expression and script of a deployed diagram runs in.

Script tasks, pre/post scripts, gateway conditions, timer expressions, service-task parameters
and ``kefu.priority`` are written by analysts in the modeler: they are user input. They are
compiled by RestrictedPython (no imports, no names or attributes starting with ``_``, no
``exec``/``eval``, no class definitions) and run with Kefu's own small set of builtins and guards:

* attribute access through RestrictedPython's ``safer_getattr`` (no dunders, no ``str.format``),
  and string methods that can blow up memory (``ljust``, ``replace`` …) only within a size limit;
* ``+``, ``*``, ``**`` and ``<<`` are rewritten into a guard that refuses results beyond
  :data:`MAX_ITEMS` items or :data:`MAX_INT_BITS` bits (``'x' * 10**9``, ``10**10**10``);
* ``range`` is limited to :data:`MAX_ITEMS`, every loop iteration counts against a budget, and
  the whole evaluation against a wall-clock limit (a trace function on the script's own frames);
* ``locals()`` / ``globals()`` return a copy of the task's data (older diagrams use them to read
  optional fields), never the interpreter's namespaces.

What a script may call is listed in :data:`OFFERED`; nothing else is reachable. This module
imports SpiffWorkflow's environment base only; it must not import web code.
"""

from __future__ import annotations

import ast
import math
import operator
import re
import resource
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from typing import Any, Literal
from uuid import UUID

from RestrictedPython import RestrictingNodeTransformer, compile_restricted
from RestrictedPython.Guards import (
    full_write_guard,
    guarded_iter_unpack_sequence,
    guarded_unpack_sequence,
    safe_builtins,
    safer_getattr,
)
from RestrictedPython.transformer import copy_locations
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import TaskDataEnvironment

FILENAME = "<kefu-script>"
MAX_ITEMS = 100_000          # elements of a built sequence or string, and of a range
MAX_INT_BITS = 100_000       # size of an integer built by ** or <<
MAX_ITERATIONS = 1_000_000   # loop iterations of one evaluation
TIME_LIMIT_S = 1.0           # wall-clock time of one evaluation
MEMORY_LIMIT_MB = 256        # growth of the process's peak memory during one evaluation
MAX_DEPTH = 64               # nesting of a value a script leaves in the case's data


class ScriptRefused(Exception):
    """A script broke a sandbox rule (compile time or run time); the message says which."""


class _Transformer(RestrictingNodeTransformer):
    """RestrictedPython's policy, plus: no imports, no ``while``, no classes; sizes guarded."""

    def visit_Import(self, node: ast.AST) -> Any:
        self.error(node, "import is not allowed in a diagram's script")
        return node

    visit_ImportFrom = visit_Import

    def visit_ClassDef(self, node: ast.AST) -> Any:
        self.error(node, "class definitions are not allowed in a diagram's script")
        return node

    def visit_While(self, node: ast.AST) -> Any:
        self.error(node, "while loops are not allowed in a diagram's script: loop over a range")
        return node

    def visit_Try(self, node: ast.AST) -> Any:
        # A handler would catch the sandbox's own refusal (the time limit is raised from a trace
        # function, which Python then removes), and the script would run on unchecked.
        self.error(node, "try/except is not allowed in a diagram's script: a script that fails stops "
                         "its step, and the administrator sees why")
        return node

    visit_TryStar = visit_Try

    def visit_FormattedValue(self, node: ast.FormattedValue) -> Any:
        spec = node.format_spec
        if spec is not None:
            parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
            constants = [p for p in parts if isinstance(p, ast.Constant)]
            if len(constants) != len(parts):
                self.error(node, "an f-string's format may not be computed in a diagram's script")
                return node
            widths = [int(n) for p in constants for n in re.findall(r"\d+", str(p.value))]
            if any(w > MAX_ITEMS for w in widths):
                self.error(node, f"an f-string's width is limited to {MAX_ITEMS} characters")
                return node
        node = self.node_contents_visit(node)
        # The value is formatted by the interpreter itself: its size is checked first.
        shown = ast.Call(func=ast.Name("_shown_", ast.Load()), args=[node.value], keywords=[])
        copy_locations(shown, node.value)
        node.value = shown
        return node

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        symbol = _GUARDED_OPS.get(type(node.op))
        if symbol is None:
            return node
        call = ast.Call(func=ast.Name("_binop_", ast.Load()),
                        args=[ast.Constant(symbol), node.left, node.right], keywords=[])
        copy_locations(call, node)
        return call


_GUARDED_OPS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<", ast.Mod: "%"}
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "*": operator.mul, "**": operator.pow, "<<": operator.lshift, "%": operator.mod,
    "+=": operator.add, "*=": operator.mul, "**=": operator.pow, "<<=": operator.lshift,
    "-=": operator.sub, "/=": operator.truediv, "//=": operator.floordiv, "%=": operator.mod,
    ">>=": operator.rshift, "&=": operator.and_, "|=": operator.or_, "^=": operator.xor,
}
_SIZED = (str, bytes, list, tuple)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


def _deep_size(value: Any, limit: int = MAX_ITEMS) -> int:
    """Items of ``value`` counted deeply, a nested container once per place it appears (so that
    ``[[0] * 100000] * 100000`` counts what printing or comparing it would walk); characters of
    text. Stops counting past ``limit``."""
    total, stack = 0, [value]
    while stack and total <= limit:
        item = stack.pop()
        if isinstance(item, str | bytes):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item)
            stack.extend(item)
    return total


def _refuse_if_large(*values: Any, factor: int = 1, deep: bool = True) -> None:
    """Refuse what would hold more than MAX_ITEMS items: counted deeply where the result is
    printed or repeated (a shared list is walked once per place); shallowly where a list or text
    only grows (``items += [x]`` in a loop must stay linear)."""
    size = _deep_size if deep else _size
    if sum(size(v) for v in values) * max(factor, 1) > MAX_ITEMS:
        raise ScriptRefused(f"the result would exceed {MAX_ITEMS} items")


_FORMAT_WIDTHS = re.compile(r"%[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_binop(symbol: str, left: Any, right: Any) -> None:
    op = symbol.rstrip("=")
    if op == "+" and isinstance(left, _SIZED):
        _refuse_if_large(left, right, deep=False)
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SIZED) and isinstance(times, int):
                _refuse_if_large(seq, factor=times)
    if op == "%" and isinstance(left, str):  # '%0999999999d' % 0 builds a gigabyte
        for width, precision in _FORMAT_WIDTHS.findall(left):
            if "*" in (width, precision) or max(int(width or 0), int(precision or 0)) > MAX_ITEMS:
                raise ScriptRefused(f"a % format's width is limited to {MAX_ITEMS} characters")
        _refuse_if_large(left, right)
    ints = isinstance(left, int) and isinstance(right, int)
    if op == "*" and ints and abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS:
        raise ScriptRefused(f"the number would exceed {MAX_INT_BITS} bits")
    if op == "**" and ints and right > 0 and abs(left) > 1 and abs(left).bit_length() * right > MAX_INT_BITS:
        raise ScriptRefused(f"the number would exceed {MAX_INT_BITS} bits")
    if op == "<<" and ints and left and abs(left).bit_length() + right > MAX_INT_BITS:
        raise ScriptRefused(f"the number would exceed {MAX_INT_BITS} bits")


def _binop(symbol: str, left: Any, right: Any) -> Any:
    _check_binop(symbol, left, right)
    return _OPERATORS[symbol](left, right)


def _range(*args: int) -> range:
    result = range(*args)
    if len(result) > MAX_ITEMS:
        raise ScriptRefused(f"range() is limited to {MAX_ITEMS} elements")
    return result


def _sized_str_method(value: str, name: str) -> Callable[..., Any]:
    method = getattr(value, name)

    def guarded(*args: Any, **kwargs: Any) -> Any:
        if name == "replace" and len(args) >= 2:
            old, new = str(args[0]), str(args[1])
            count = value.count(old) if old else len(value) + 1
            estimate = len(value) + count * len(new)
        elif name == "expandtabs":
            estimate = len(value) * int(args[0] if args else kwargs.get("tabsize", 8))
        else:
            estimate = int(args[0] if args else 0)
        if estimate > MAX_ITEMS:
            raise ScriptRefused(f"the result would exceed {MAX_ITEMS} characters")
        return method(*args, **kwargs)

    return guarded


_SIZED_STR_METHODS = frozenset(("ljust", "rjust", "center", "zfill", "expandtabs", "replace"))
_GROWING_LIST_METHODS = frozenset(("append", "extend", "insert"))


def _joined(separator: str) -> Callable[[Any], str]:
    def join(items: Any) -> str:
        items = list(items)
        length = sum(len(i) for i in items if isinstance(i, str)) + len(separator) * max(len(items) - 1, 0)
        if length > MAX_ITEMS:
            raise ScriptRefused(f"the result would exceed {MAX_ITEMS} characters")
        return separator.join(items)

    return join


def _growing(target: list, name: str) -> Callable[..., Any]:
    method = getattr(target, name)

    def guarded(*args: Any) -> Any:
        _refuse_if_large(target, *(a for a in args if isinstance(a, _SIZED)), deep=False)
        return method(*args)

    return guarded


def _getattr(obj: Any, name: str, *default: Any) -> Any:
    if isinstance(obj, str) and name in _SIZED_STR_METHODS:
        return _sized_str_method(obj, name)
    if isinstance(obj, str) and name == "join":
        return _joined(obj)
    if isinstance(obj, list) and name in _GROWING_LIST_METHODS:
        return _growing(obj, name)
    return safer_getattr(obj, name, *default)


def _shown(value: Any) -> Any:
    """What is turned into text (``str``, ``repr``, an f-string) is first checked for size."""
    _refuse_if_large(value)
    return value


class _StrType(type):
    """``str`` as scripts see it: ``isinstance(x, str)`` still works, and ``str(x)`` checks the size
    of what it is asked to print."""

    def __instancecheck__(cls, instance: Any) -> bool:
        return isinstance(instance, str)

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if args:
            _shown(args[0])
        return str(*args, **kwargs)


class _Str(metaclass=_StrType):
    pass


def _repr(value: Any) -> str:
    return repr(_shown(value))


def _sum(items: Any, start: Any = 0) -> Any:
    """Numbers only: ``sum(lists, [])`` copies quadratically inside one call the clock cannot see."""
    values = list(items)
    if not all(isinstance(v, int | float | Decimal) for v in (start, *values)):
        raise ScriptRefused("sum() adds numbers only")
    return sum(values, start)


def _getitem(obj: Any, key: Any) -> Any:
    return obj[key]


_NAMES_KEPT = ("None", "False", "True", "abs", "bool", "chr", "divmod", "float", "int", "isinstance",
               "len", "ord", "round", "hex", "oct", "slice", "callable")
# The functions Kefu offers to a diagram's scripts, on purpose (docs/bpmn-conventions.md).
OFFERED: dict[str, Any] = {
    **{name: safe_builtins[name] for name in _NAMES_KEPT},
    **{name: value for name, value in safe_builtins.items() if name.endswith(("Error", "Exception"))},
    "str": _Str, "repr": _repr,
    "range": _range, "min": min, "max": max, "sum": _sum, "any": any, "all": all, "sorted": sorted,
    "reversed": reversed, "enumerate": enumerate, "zip": zip, "list": list, "dict": dict,
    "set": set, "tuple": tuple, "frozenset": frozenset, "map": map, "filter": filter,
}


@lru_cache(maxsize=4096)
def compile_script(source: str, mode: Literal["exec", "eval"]) -> Any:
    """RestrictedPython byte code of an expression (``mode='eval'``) or a script (``'exec'``);
    :class:`ScriptRefused` names the first rule it breaks."""
    try:
        return compile_restricted(source, FILENAME, mode, policy=_Transformer)
    except SyntaxError as exc:
        raise ScriptRefused(_first_line(exc)) from exc


def check_script(source: str, mode: Literal["exec", "eval"]) -> str | None:
    """Why ``source`` cannot run in the sandbox, or None when it can (deployment-time check)."""
    try:
        compile_script(source, mode)
    except ScriptRefused as exc:
        return str(exc)
    return None


def _first_line(exc: SyntaxError) -> str:
    """The first error RestrictedPython reported (it raises them all as one tuple)."""
    first = exc.args[0] if exc.args else ""
    if isinstance(first, (tuple, list)):
        first = first[0] if first else ""
    text = str(first or exc.msg or "invalid script")
    return text.splitlines()[0]


class _Budget:
    """Counts loop iterations and watches the clock while one evaluation runs."""

    def __init__(self) -> None:
        self.deadline = time.monotonic() + TIME_LIMIT_S
        self.iterations = 0
        self.events = 0
        self.memory_ceiling = _peak_memory_kb() + MEMORY_LIMIT_MB * 1024

    def getiter(self, iterable: Any) -> Any:
        for item in iter(iterable):
            self.iterations += 1
            if self.iterations > MAX_ITERATIONS:
                raise ScriptRefused(f"a script may loop at most {MAX_ITERATIONS} times")
            yield item

    def trace(self, frame: Any, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != FILENAME:
            return None  # library code the script calls is not traced
        if time.monotonic() > self.deadline:
            raise ScriptRefused(f"the script ran longer than {TIME_LIMIT_S:g} s")
        self.events += 1
        # The peak grows only when memory does; sampled, since one look costs a system call.
        if not self.events % 32 and _peak_memory_kb() > self.memory_ceiling:
            raise ScriptRefused(f"the script used more than {MEMORY_LIMIT_MB} MB")
        return self.trace


def _peak_memory_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _namespace(budget: _Budget, data: dict[str, Any]) -> dict[str, Any]:
    def visible() -> dict[str, Any]:
        return {k: v for k, v in data.items() if not k.startswith("_")}

    builtins = {**OFFERED, "locals": visible, "globals": visible}
    return {
        "__builtins__": builtins, "_getattr_": _getattr, "_getitem_": _getitem,
        "_getiter_": budget.getiter, "_write_": full_write_guard, "_binop_": _binop,
        "_inplacevar_": _binop, "_shown_": _shown, "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
        "_unpack_sequence_": guarded_unpack_sequence,
    }


def _run(code: Any, namespace: dict[str, Any], budget: _Budget, mode: str) -> Any:
    previous = sys.gettrace()
    sys.settrace(budget.trace)
    try:
        # The code was compiled by RestrictedPython and runs with the guards above only.
        return eval(code, namespace) if mode == "eval" else exec(code, namespace)  # noqa: S102
    except RecursionError as exc:
        raise ScriptRefused("the script recursed too deeply") from exc
    finally:
        sys.settrace(previous)


class SandboxEnvironment(TaskDataEnvironment):
    """Spiff's task-data environment, with every evaluation compiled and run in the sandbox."""

    def __init__(self) -> None:
        super().__init__({})

    def evaluate(self, expression: str, context: dict[str, Any], external_context: dict | None = None) -> Any:
        code = compile_script(str(expression), "eval")
        budget = _Budget()
        # The guards go on top: data can never replace them (its keys come from forms and peers).
        namespace = {**(external_context or {}), **context, **_namespace(budget, context)}
        return _run(code, namespace, budget, "eval")

    def execute(self, script: str, context: dict[str, Any], external_context: dict | None = None) -> bool:
        code = compile_script(str(script), "exec")
        budget = _Budget()
        guards = _namespace(budget, context)
        external = external_context or {}
        namespace = {**external, **context, **guards}
        _run(code, namespace, budget, "exec")
        # What the script assigned becomes the task's data; guards, functions and external
        # context do not (a data key a guard shadowed keeps its value).
        result = {k: v for k, v in namespace.items()
                  if k not in guards and k not in external and not callable(v)}
        result.update({k: context[k] for k in guards if k in context})
        for name, value in result.items():
            problem = _unstorable(value)
            if problem:
                raise ScriptRefused(f"the script left a value the case cannot keep in '{name}': {problem}")
        context.clear()
        context.update(result)
        return True


# What the workflow's serializer (SpiffWorkflow's registry) can write besides JSON's own values.
_LEAVES = (str, bool, int, float, datetime, timedelta, UUID, type(None))


def _unstorable(value: Any) -> str | None:
    """Why ``value`` cannot be kept in the case's data (stored as JSON), or None."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    seen = 0
    while stack:
        item, depth = stack.pop()
        seen += 1
        if seen > MAX_ITEMS:
            return f"more than {MAX_ITEMS} items"
        if depth > MAX_DEPTH:
            return f"nested more than {MAX_DEPTH} levels deep"
        if isinstance(item, dict):
            if not all(isinstance(k, str | int) for k in item):
                return "a mapping whose keys are not text"
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, int) and not isinstance(item, bool) and abs(item).bit_length() > 14_000:
            return "a number of more than 4,000 digits"
        elif isinstance(item, float) and not math.isfinite(item):
            return "a number that is not finite"
        elif not isinstance(item, _LEAVES):
            return f"a {type(item).__name__} (keep lists, mappings, text and numbers)"
    return None


def make_script_engine() -> PythonScriptEngine:
    """The script engine of every workflow Kefu runs."""
    return PythonScriptEngine(environment=SandboxEnvironment())

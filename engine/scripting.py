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
import operator
import sys
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Literal

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

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        node = self.node_contents_visit(node)
        symbol = _GUARDED_OPS.get(type(node.op))
        if symbol is None:
            return node
        call = ast.Call(func=ast.Name("_binop_", ast.Load()),
                        args=[ast.Constant(symbol), node.left, node.right], keywords=[])
        copy_locations(call, node)
        return call


_GUARDED_OPS = {ast.Add: "+", ast.Mult: "*", ast.Pow: "**", ast.LShift: "<<"}
_OPERATORS: dict[str, Callable[[Any, Any], Any]] = {
    "+": operator.add, "*": operator.mul, "**": operator.pow, "<<": operator.lshift,
    "+=": operator.add, "*=": operator.mul, "**=": operator.pow, "<<=": operator.lshift,
    "-=": operator.sub, "/=": operator.truediv, "//=": operator.floordiv, "%=": operator.mod,
    ">>=": operator.rshift, "&=": operator.and_, "|=": operator.or_, "^=": operator.xor,
}
_SIZED = (str, bytes, list, tuple)


def _size(value: Any) -> int:
    return len(value) if isinstance(value, _SIZED) else 0


def _check_binop(symbol: str, left: Any, right: Any) -> None:
    op = symbol.rstrip("=")
    if op == "+" and isinstance(left, _SIZED) and _size(left) + _size(right) > MAX_ITEMS:
        raise ScriptRefused(f"the result would exceed {MAX_ITEMS} items")
    if op == "*":
        for seq, times in ((left, right), (right, left)):
            if isinstance(seq, _SIZED) and isinstance(times, int) and _size(seq) * times > MAX_ITEMS:
                raise ScriptRefused(f"the result would exceed {MAX_ITEMS} items")
    ints = isinstance(left, int) and isinstance(right, int)
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


def _getattr(obj: Any, name: str, *default: Any) -> Any:
    if isinstance(obj, str) and name in _SIZED_STR_METHODS:
        return _sized_str_method(obj, name)
    return safer_getattr(obj, name, *default)


def _getitem(obj: Any, key: Any) -> Any:
    return obj[key]


_NAMES_KEPT = ("None", "False", "True", "abs", "bool", "chr", "divmod", "float", "int", "isinstance",
               "len", "ord", "round", "str", "repr", "hex", "oct", "slice", "callable")
# The functions Kefu offers to a diagram's scripts, on purpose (docs/bpmn-conventions.md).
OFFERED: dict[str, Any] = {
    **{name: safe_builtins[name] for name in _NAMES_KEPT},
    **{name: value for name, value in safe_builtins.items() if name.endswith(("Error", "Exception"))},
    "range": _range, "min": min, "max": max, "sum": sum, "any": any, "all": all, "sorted": sorted,
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
        return self.trace


def _namespace(budget: _Budget, data: dict[str, Any]) -> dict[str, Any]:
    def visible() -> dict[str, Any]:
        return {k: v for k, v in data.items() if not k.startswith("_")}

    builtins = {**OFFERED, "locals": visible, "globals": visible}
    return {
        "__builtins__": builtins, "_getattr_": _getattr, "_getitem_": _getitem,
        "_getiter_": budget.getiter, "_write_": full_write_guard, "_binop_": _binop,
        "_inplacevar_": _binop, "_iter_unpack_sequence_": guarded_iter_unpack_sequence,
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
        context.clear()
        context.update(result)
        return True


def make_script_engine() -> PythonScriptEngine:
    """The script engine of every workflow Kefu runs."""
    return PythonScriptEngine(environment=SandboxEnvironment())

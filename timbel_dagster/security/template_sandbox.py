"""One bounded Jinja2 sandbox for every template whose text Timbel did not write itself.

Template text comes from people other than the operator running Timbel: stored marketplace
templates, `timbel generate --template FILE` and `timbel template preview FILE`, override
files in TIMBEL_TEMPLATES_DIR, alert rule summaries (from the warehouse or a rules file).
All of it renders in `BoundedSandbox`, Jinja2's ImmutableSandboxedEnvironment with:

- no Python internals: an attribute or key starting with `_` (`cycler.__init__`,
  `''.__class__`, `self._TemplateReference__context`) is refused at once, and builtin
  lists, dicts and sets cannot be changed;
- a work budget per render: loop iterations, calls, filters, operators, lookups and
  pieces of output each count one step (`Limits.steps`, 1,000,000);
- a size limit: no value (string, list, mapping, counted with what it holds) and no
  output larger than `Limits.output` characters (1,000,000), checked *before* `*`, `**`,
  `+`, `%`, `~`, literals, `str.format`, string methods and size-taking filters build it
  (integers stay under 4,096 bits); text built inside macros and blocks counts too;
- a wall-clock deadline (`Limits.seconds`, 5 s), checked at every step as a backstop.

Whatever crosses a limit or the sandbox raises `TemplateRefused` (a jinja2 SecurityError
and a ValueError) with one line, for example
`template ci.j2, line 2: rendering stopped after 1,000,000 steps (limit)`; nothing partial
is returned. Only `render()` (and `generate()`/`stream()`, which go through it) is bounded.
"""

from __future__ import annotations

import contextvars
import functools
import math
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes, pass_context, pass_eval_context
from jinja2.environment import Template
from jinja2.runtime import markup_join, str_join
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
    SecurityError,
)
from jinja2.utils import Namespace, generate_lorem_ipsum
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

MAX_INT_BITS = 4096
_LOOP, _OUT, _CONCAT, _SIZED = "_timbel_loop", "_timbel_out", "_timbel_concat", "_timbel_sized"
# A %-format conversion: `%(key)-08.3f`; its width and precision are what can be huge.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")
_SPEC_NUMBER = re.compile(r"\d+")


@dataclass(frozen=True)
class Limits:
    """What one render may spend.

    Attributes:
        steps: loop iterations, calls, filters, operators, lookups and pieces of output,
            together.
        output: characters of output (including text built in macros and blocks), and the
            largest value a template may build.
        seconds: wall-clock time.
    """

    steps: int = 1_000_000
    output: int = 1_000_000
    seconds: float = 5.0


DEFAULT_LIMITS = Limits()


class TemplateRefused(SecurityError, ValueError):
    """A template did something the sandbox forbids or crossed a limit.

    Attributes:
        detail: what was refused, without the template's name.
        name: the template's name, when it has one.
        line: the template line, when known.
        filename: the file of that line (an included or base template's), when known.
    """

    def __init__(
        self,
        detail: str,
        name: str | None = None,
        line: int | None = None,
        filename: str | None = None,
    ) -> None:
        self.detail, self.name, self.line, self.filename = detail, name, line, filename
        where = f"template {name}" if name else "template"
        at = f", line {line}" if line is not None else ""
        super().__init__(f"{where}{at}: {detail}")


class _Budget:
    __slots__ = ("deadline", "limits", "memo", "produced", "refused", "steps")

    def __init__(self, limits: Limits) -> None:
        self.limits, self.steps, self.produced = limits, 0, 0
        self.refused: str | None = None
        self.deadline = time.monotonic() + limits.seconds
        # Weights of large values already measured, by id (the value is kept, so its id is
        # not reused): a value built from itself (`[a, a]`) is measured in one step.
        self.memo: dict[int, tuple[Any, int]] = {}

    def refuse(self, detail: str) -> None:
        self.refused = self.refused or detail  # sticky: swallowing the error does not help
        raise TemplateRefused(self.refused)

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limits.steps or self.refused is not None:
            self.refuse(f"rendering stopped after {self.limits.steps:,} steps (limit)")
        if time.monotonic() > self.deadline:
            self.refuse(f"rendering stopped after {self.limits.seconds:g} s (limit)")

    def produce(self, size: int) -> None:
        self.produced += size
        if self.produced > self.limits.output:
            self.refuse(f"the output is longer than {self.limits.output:,} characters (limit)")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar(
    "timbel_template_budget", default=None
)


def _step() -> int:
    """Count one step of the current render; the size limit that applies."""
    budget = _BUDGET.get()
    if budget is None:  # compile-time constant folding: sizes are still checked
        return DEFAULT_LIMITS.output
    budget.step()
    return budget.limits.output


def _refuse(detail: str) -> None:
    budget = _BUDGET.get()
    if budget is not None:
        budget.refuse(detail)
    raise TemplateRefused(detail)


_MEMO_FROM, _MEMO_ENTRIES = 1000, 10_000


def weight(value: Any, limit: int) -> int:
    """Characters and items `value` holds, nested containers included; counting stops past
    `limit`, so this costs at most O(limit) however the value is built."""
    if isinstance(value, str):
        return len(value)
    budget = _BUDGET.get()
    memo = budget.memo if budget is not None else {}
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str | bytes | bytearray):
            total += len(item)
        elif id(item) in memo and memo[id(item)][0] is item:
            total += memo[id(item)][1]
        elif isinstance(item, Mapping):
            total += len(item) + 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += len(item) + 1
            stack.extend(item)
        elif isinstance(item, Namespace):
            stack.append(object.__getattribute__(item, "_Namespace__attrs"))
        elif isinstance(item, int) and not isinstance(item, bool):
            total += item.bit_length() // 3 + 1  # about its decimal digits
        else:
            total += 1
        if total > limit:
            return total
    # The sandbox changes no list, dict or set (Namespace attributes are measured anew).
    memorable = isinstance(value, list | tuple | dict | set | frozenset)
    if budget is not None and memorable and total >= _MEMO_FROM and len(memo) < _MEMO_ENTRIES:
        memo[id(value)] = (value, total)
    return total


def _check_size(value: Any, what: str, limit: int) -> None:
    if weight(value, limit) > limit:
        _refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def _check_int_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        _refuse(f"{what} would build a number of more than {MAX_INT_BITS:,} bits (limit)")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_percent(text: str, args: Any, limit: int, what: str) -> None:
    """`text % args`: widths, precisions and how often each argument is pasted."""
    conversions = _PERCENT.findall(text)
    values = list(args.values()) if isinstance(args, Mapping) else args
    values = list(values) if isinstance(values, tuple) else [values]
    numbers = [int(n) for spec in conversions for n in spec if n.isdigit()]
    if any("*" in spec for spec in conversions):
        numbers += [abs(v) for v in values if _is_int(v)]
    if any(n > limit for n in numbers):
        _refuse(f"{what}: a width or precision over {limit:,} (limit)")
    largest = max((weight(v, limit) for v in values), default=0)
    if len(text) + len(conversions) * largest > limit:
        _refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def _check_replace(text: Any, old: Any, new: Any, limit: int, what: str) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * max(0, len(new) - len(old)) > limit:
            _refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def _check_join(items: list[Any], separator: Any, limit: int, what: str) -> None:
    size = weight(separator, limit) * max(0, len(items) - 1) + weight(items, limit)
    if size > limit:
        _refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def _check_width(width: Any, limit: int, what: str) -> None:
    if _is_int(width) and width > limit:
        _refuse(f"{what}: a width of {width:,} is over {limit:,} (limit)")


# Pre-checks of the filters that take a size, by name: (limit, value, *args, **kwargs).
def _f_center(limit: int, value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    _check_width(width, limit, "center")


def _f_indent(limit: int, value: Any, width: Any = 4, *_: Any, **kwargs: Any) -> None:
    width = kwargs.get("width", width)
    each = len(width) if isinstance(width, str) else width if _is_int(width) else 0
    lines = str(value).count("\n") + 1
    if len(str(value)) + lines * max(0, each) > limit:
        _refuse(f"indent would build a value longer than {limit:,} characters (limit)")


def _f_wordwrap(limit: int, value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
    text = str(value)
    lines = len(text) // max(1, width if _is_int(width) else 1) + 1
    if len(text) + lines * len(str(wrapstring)) > limit:
        _refuse(f"wordwrap would build a value longer than {limit:,} characters (limit)")


def _f_format(limit: int, value: Any, *args: Any, **kwargs: Any) -> None:
    _check_percent(str(value), kwargs or args, limit, "format")


def _f_replace(limit: int, value: Any, old: Any = "", new: Any = "", *_: Any, **__: Any) -> None:
    _check_replace(str(value), str(old), str(new), limit, "replace")


def _f_with_cache(limit: int, value: Any, directory: Any = "", *_: Any, **__: Any) -> None:
    _check_replace(str(value), "{cache}", str(directory), limit, "with_cache")


def _f_count(name: str, position: int) -> Callable[..., None]:
    def check(limit: int, value: Any, *args: Any, **kwargs: Any) -> None:
        count = args[position] if len(args) > position else kwargs.get(name)
        _check_width(count, limit, f"{name}")

    return check


def _f_tojson(limit: int, value: Any, indent: Any = None, *_: Any, **__: Any) -> None:
    if _is_int(indent) and indent > 16:
        _refuse(f"tojson: an indent of {indent:,} is over 16 (limit)")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _f_center,
    "indent": _f_indent,
    "wordwrap": _f_wordwrap,
    "format": _f_format,
    "replace": _f_replace,
    "with_cache": _f_with_cache,
    "batch": _f_count("linecount", 0),
    "slice": _f_count("slices", 0),
    "tojson": _f_tojson,
}


def _bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` counted as a step, its size arguments checked, its result size checked."""
    if getattr(function, "timbel_bounded", False):
        return function
    offset = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    check = _FILTER_CHECKS.get(name)

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        limit = _step()
        if name == "join" and len(args) > offset:  # measure the items before joining
            items = list(args[offset])
            separator = args[offset + 1] if len(args) > offset + 1 else kwargs.get("d", "")
            _check_join(items, separator, limit, "join")
            args = (*args[:offset], items, *args[offset + 1 :])
        elif check is not None and len(args) > offset:
            check(limit, *args[offset:], **kwargs)
        result = function(*args, **kwargs)
        _check_size(result, f"the filter {name!r}", limit)
        return result

    bounded.timbel_bounded = True  # type: ignore[attr-defined]
    return bounded


class _Steps:
    """A loop's iterable: each item is one step of the budget."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterable = iterable

    def __len__(self) -> int:  # loop.length, loop.last
        return len(self._iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        budget = _BUDGET.get()
        for item in self._iterable:
            if budget is not None:
                budget.step()
            yield item


@pass_context
def _loop(_context: Any, iterable: Any) -> _Steps:
    return _Steps(iterable)


@pass_context
def _out(_context: Any, value: Any) -> Any:
    budget = _BUDGET.get()
    if budget is not None:
        budget.step()
        budget.produce(weight(value, budget.limits.output))
    return value


@pass_eval_context
def _concat(eval_context: Any, items: list[Any]) -> str:
    limit = _step()
    _check_size(items, "'~'", limit)
    return markup_join(items) if eval_context.autoescape else str_join(items)


def _sized(value: Any) -> Any:
    _check_size(value, "a literal", _step())
    return value


def _wrap(node: nodes.Expr, name: str) -> nodes.Filter:
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class _Bound(NodeTransformer):
    """Routes what the sandbox has no hook for through the budget: loop iterables, every
    piece of output (also inside macros and blocks), `~` and container literals."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        node = self.generic_visit(node)
        node.iter = _wrap(node.iter, _LOOP)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        node = self.generic_visit(node)
        node.nodes = [_wrap(child, _OUT) for child in node.nodes]
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        node = self.generic_visit(node)
        return _wrap(nodes.List(node.nodes, lineno=node.lineno), _CONCAT)

    def _literal(self, node: nodes.Expr) -> nodes.Node:
        node = self.generic_visit(node)
        if getattr(node, "ctx", "load") != "load":
            return node  # an assignment target: `{% for a, b in ... %}`
        return _wrap(node, _SIZED)

    visit_List = visit_Tuple = visit_Dict = _literal


class _BoundedFormatterMixin:
    """`str.format` in the sandbox: no field wider than the limit, and no more than the
    limit in total."""

    _timbel_size = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        limit = _step()
        if any(int(n) > limit for n in _SPEC_NUMBER.findall(format_spec)):
            _refuse(f"format: a width or precision over {limit:,} (limit)")
        self._timbel_size += weight(value, limit) + len(format_spec)
        if self._timbel_size > limit:
            _refuse(f"format would build a value longer than {limit:,} characters (limit)")
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _BoundedFormatter(_BoundedFormatterMixin, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFormatterMixin, SandboxedEscapeFormatter):
    pass


def _check_call(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limit: int
) -> tuple[Any, ...]:
    """Calls that can build something large from small arguments; the arguments to call
    with (an iterable to join is read once, here)."""
    receiver = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(receiver, str):
        first = args[0] if args else None
        if name in {"center", "ljust", "rjust", "zfill"}:
            _check_width(first, limit, name)
        elif name == "expandtabs":
            size = first if _is_int(first) else 8
            if len(receiver) + receiver.count("\t") * size > limit:
                _refuse(f"expandtabs would build a value longer than {limit:,} characters (limit)")
        elif name == "replace" and len(args) >= 2:
            _check_replace(receiver, args[0], args[1], limit, "replace")
        elif name == "join" and args:
            items = list(args[0])
            _check_join(items, receiver, limit, "join")
            args = (items, *args[1:])
    elif function is generate_lorem_ipsum:
        n = kwargs.get("n", args[0] if args else 5)
        words = kwargs.get("max", args[3] if len(args) > 3 else 100)
        if _is_int(n) and _is_int(words) and n * words * 8 > limit:
            _refuse(f"lipsum would build a value longer than {limit:,} characters (limit)")
    return args


def _position(error: BaseException) -> tuple[str | None, int | None]:
    """The innermost template file and line in the error's traceback (Jinja rewrites it so
    that template code shows as frames of the template's file, `<template>` for a string)."""
    found: tuple[str | None, int | None] = (None, None)
    tb = error.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and (filename == "<template>" or filename[:1] != "<"):
            found = (None if filename == "<template>" else filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


class BoundedTemplate(Template):
    """A template whose `render()` runs under the environment's `Limits`."""

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render under the limits.

        Raises:
            TemplateRefused: a forbidden operation, or a limit crossed (one line, naming the
                template and line).
        """
        if _BUDGET.get() is not None:  # a render inside a render shares its budget
            return super().render(*args, **kwargs)
        limits: Limits = getattr(self.environment, "limits", DEFAULT_LIMITS)
        budget = _Budget(limits)
        token = _BUDGET.set(budget)
        try:
            parts, size = [], 0
            for part in super().generate(*args, **kwargs):
                size += len(part)
                if size > limits.output:
                    budget.refuse(f"the output is longer than {limits.output:,} characters (limit)")
                parts.append(part)
            if budget.refused is not None:  # something caught the error on the way out
                budget.refuse(budget.refused)
            return "".join(parts)
        except SecurityError as error:
            detail = error.detail if isinstance(error, TemplateRefused) else str(error.message)
            filename, line = _position(error)
            raise TemplateRefused(detail, self.name, line, filename) from None
        finally:
            _BUDGET.reset(token)

    def generate(self, *args: Any, **kwargs: Any) -> Iterator[str]:
        """The bounded render, as one piece."""
        yield self.render(*args, **kwargs)


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox with a budget per render (see the module docstring).

    Takes the options of `jinja2.Environment` plus `limits`. Filters may be added to
    `filters` afterwards: they are bounded when a template is compiled.
    """

    template_class = BoundedTemplate
    intercepted_binops = frozenset({"+", "*", "%", "**"})

    def __init__(self, *args: Any, limits: Limits = DEFAULT_LIMITS, **options: Any) -> None:
        super().__init__(*args, **options)
        self.limits = limits
        self.filters.update({_LOOP: _loop, _OUT: _out, _CONCAT: _concat, _SIZED: _sized})

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        for key, function in list(self.filters.items()):
            if key not in (_LOOP, _OUT, _CONCAT, _SIZED):
                self.filters[key] = _bounded_filter(key, function)
        tree = _Bound().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        _step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        _step()
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Refuse at once, instead of an undefined value that may print as nothing."""
        _refuse(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        limit = _step()
        args = _check_call(obj, args, kwargs, limit)
        result = super().call(context, obj, *args, **kwargs)
        _check_size(result, f"calling {getattr(obj, '__name__', 'a function')}", limit)
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limit = _step()
        what = f"'{operator}'"
        if operator == "**" and _is_int(left) and _is_int(right) and right > 0:
            if abs(left) > 1:
                _check_int_bits(int(right * math.log2(abs(left))), what)
        elif operator == "*":
            if _is_int(left) and _is_int(right):
                _check_int_bits(left.bit_length() + right.bit_length(), what)
            elif _is_int(right) and right > 1:
                _check_size_times(left, right, limit, what)
            elif _is_int(left) and left > 1:
                _check_size_times(right, left, limit, what)
        elif operator == "+" and not (_is_number(left) and _is_number(right)):
            if weight(left, limit) + weight(right, limit) > limit:
                _refuse(f"{what} would build a value longer than {limit:,} characters (limit)")
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right, limit, what)
        return super().call_binop(context, operator, left, right)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """`str.format` and `format_map` with the bounded formatter (else as Jinja2)."""
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text: str = value.__self__
        if isinstance(text, Markup):
            formatter: SandboxedFormatter = _BoundedEscapeFormatter(self, escape=text.escape)
        else:
            formatter = _BoundedFormatter(self)
        is_format_map = value.__name__ == "format_map"

        def bounded(*args: Any, **kwargs: Any) -> str:
            if is_format_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                args, kwargs = (), args[0]
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(bounded, value)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) or value is None


def _check_size_times(value: Any, times: int, limit: int, what: str) -> None:
    if isinstance(value, str | bytes | list | tuple) and weight(value, limit) * times > limit:
        _refuse(f"{what} would build a value longer than {limit:,} characters (limit)")

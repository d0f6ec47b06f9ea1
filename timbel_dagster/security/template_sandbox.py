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

import functools
import math
import re
from collections.abc import Callable, Iterable, Iterator
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
from jinja2.visitor import NodeTransformer
from markupsafe import Markup

from timbel_dagster.security.template_budget import (
    BUDGET,
    DEFAULT_LIMITS,
    MAX_INT_BITS,
    Budget,
    Limits,
    TemplateRefused,
    bounded_filter,
    check_call,
    check_int_bits,
    check_percent,
    check_size,
    check_size_times,
    is_int,
    is_number,
    refuse,
    step,
    weight,
)

__all__ = ["MAX_INT_BITS", "BoundedSandbox", "BoundedTemplate", "Limits", "TemplateRefused"]

_LOOP, _OUT, _CONCAT, _SIZED = "_timbel_loop", "_timbel_out", "_timbel_concat", "_timbel_sized"
_SPEC_NUMBER = re.compile(r"\d+")


class _Steps:
    """A loop's iterable: each item is one step of the budget."""

    __slots__ = ("_iterable",)

    def __init__(self, iterable: Iterable[Any]) -> None:
        self._iterable = iterable

    def __len__(self) -> int:  # loop.length, loop.last
        return len(self._iterable)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[Any]:
        budget = BUDGET.get()
        for item in self._iterable:
            if budget is not None:
                budget.step()
            yield item


@pass_context
def _loop(_context: Any, iterable: Any) -> _Steps:
    return _Steps(iterable)


@pass_context
def _out(_context: Any, value: Any) -> Any:
    budget = BUDGET.get()
    if budget is not None:
        budget.step()
        budget.produce(weight(value, budget.limits.output))
    return value


@pass_eval_context
def _concat(eval_context: Any, items: list[Any]) -> str:
    limit = step()
    check_size(items, "'~'", limit)
    return markup_join(items) if eval_context.autoescape else str_join(items)


def _sized(value: Any) -> Any:
    check_size(value, "a literal", step())
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
        limit = step()
        if any(int(n) > limit for n in _SPEC_NUMBER.findall(format_spec)):
            refuse(f"format: a width or precision over {limit:,} (limit)")
        self._timbel_size += weight(value, limit) + len(format_spec)
        if self._timbel_size > limit:
            refuse(f"format would build a value longer than {limit:,} characters (limit)")
        return super().format_field(value, format_spec)  # type: ignore[misc]


class _BoundedFormatter(_BoundedFormatterMixin, SandboxedFormatter):
    pass


class _BoundedEscapeFormatter(_BoundedFormatterMixin, SandboxedEscapeFormatter):
    pass


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
        if BUDGET.get() is not None:  # a render inside a render shares its budget
            return super().render(*args, **kwargs)
        limits: Limits = getattr(self.environment, "limits", DEFAULT_LIMITS)
        budget = Budget(limits)
        token = BUDGET.set(budget)
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
            BUDGET.reset(token)

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
                self.filters[key] = bounded_filter(key, function)
        tree = _Bound().visit(super()._parse(source, name, filename))
        tree.set_environment(self)
        return tree

    def getattr(self, obj: Any, attribute: str) -> Any:
        step()
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        step()
        return super().getitem(obj, argument)

    def unsafe_undefined(self, obj: Any, attribute: str) -> Any:
        """Refuse at once, instead of an undefined value that may print as nothing."""
        refuse(f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    def call(self, context: Any, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        limit = step()
        args = check_call(obj, args, kwargs, limit)
        result = super().call(context, obj, *args, **kwargs)
        check_size(result, f"calling {getattr(obj, '__name__', 'a function')}", limit)
        return result

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        limit = step()
        what = f"'{operator}'"
        if operator == "**" and is_int(left) and is_int(right) and right > 0:
            if abs(left) > 1:
                check_int_bits(int(right * math.log2(abs(left))), what)
        elif operator == "*":
            if is_int(left) and is_int(right):
                check_int_bits(left.bit_length() + right.bit_length(), what)
            elif is_int(right) and right > 1:
                check_size_times(left, right, limit, what)
            elif is_int(left) and left > 1:
                check_size_times(right, left, limit, what)
        elif operator == "+" and not (is_number(left) and is_number(right)):
            if weight(left, limit) + weight(right, limit) > limit:
                refuse(f"{what} would build a value longer than {limit:,} characters (limit)")
        elif operator == "%" and isinstance(left, str):
            check_percent(left, right, limit, what)
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
            formatter._timbel_size = 0  # type: ignore[attr-defined]  # per call
            return type(text)(formatter.vformat(text, args, kwargs))

        return functools.update_wrapper(bounded, value)

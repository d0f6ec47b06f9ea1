"""What one template render may spend, and the checks that keep it within that.

`template_sandbox.BoundedSandbox` calls these from its hooks; the budget of the render in
progress is in a context variable, so renders in other threads have their own. A value's
size is its `weight`: characters and items, nested containers included. Every check runs
*before* the value is built; a refusal raises `TemplateRefused` (one line) and stays
refused for the rest of the render even if something catches it.
"""

from __future__ import annotations

import contextvars
import functools
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from jinja2.sandbox import SecurityError
from jinja2.utils import Namespace, generate_lorem_ipsum

MAX_INT_BITS = 4096
# A %-format conversion: `%(key)-08.3f`; its width and precision are what can be huge.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[a-zA-Z%]")


@dataclass(frozen=True)
class Limits:
    """What one render may spend.

    Attributes:
        steps: loop iterations, calls, filters, operators, lookups and pieces of output,
            together.
        output: characters of output (including text built in macros and blocks), and the
            largest value a template may build.
        seconds: CPU time of the rendering thread (`_clock`).
    """

    steps: int = 250_000
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


# The rendering thread's CPU time, not wall-clock time: rendering is pure computation, so
# this bounds the same work, and a render on a busy machine (other processes, other
# threads) is not stopped for time it never had. With a wall clock, which limit stopped a
# runaway template depended on the machine's load.
_clock = time.thread_time


class Budget:
    __slots__ = ("deadline", "limits", "memo", "produced", "refused", "steps")

    def __init__(self, limits: Limits) -> None:
        self.limits, self.steps, self.produced = limits, 0, 0
        self.refused: str | None = None
        self.deadline = _clock() + limits.seconds
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
        if _clock() > self.deadline:
            self.refuse(f"rendering stopped after {self.limits.seconds:g} s (limit)")

    def produce(self, size: int) -> None:
        self.produced += size
        if self.produced > self.limits.output:
            self.refuse(f"the output is longer than {self.limits.output:,} characters (limit)")


BUDGET: contextvars.ContextVar[Budget | None] = contextvars.ContextVar(
    "timbel_template_budget", default=None
)


def step() -> int:
    """Count one step of the current render; the size limit that applies."""
    budget = BUDGET.get()
    if budget is None:  # compile-time constant folding: sizes are still checked
        return DEFAULT_LIMITS.output
    budget.step()
    return budget.limits.output


def refuse(detail: str) -> None:
    budget = BUDGET.get()
    if budget is not None:
        budget.refuse(detail)
    raise TemplateRefused(detail)


_MEMO_FROM, _MEMO_ENTRIES = 1000, 10_000


def weight(value: Any, limit: int) -> int:
    """Characters and items `value` holds, nested containers included; counting stops past
    `limit`, so this costs at most O(limit) however the value is built."""
    if isinstance(value, str):
        return len(value)
    budget = BUDGET.get()
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


def check_size(value: Any, what: str, limit: int) -> None:
    if weight(value, limit) > limit:
        refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def check_int_bits(bits: int, what: str) -> None:
    if bits > MAX_INT_BITS:
        refuse(f"{what} would build a number of more than {MAX_INT_BITS:,} bits (limit)")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_percent(text: str, args: Any, limit: int, what: str) -> None:
    """`text % args`: widths, precisions and how often each argument is pasted."""
    conversions = _PERCENT.findall(text)
    values = list(args.values()) if isinstance(args, Mapping) else args
    values = list(values) if isinstance(values, tuple) else [values]
    numbers = [int(n) for spec in conversions for n in spec if n.isdigit()]
    if any("*" in spec for spec in conversions):
        numbers += [abs(v) for v in values if is_int(v)]
    if any(n > limit for n in numbers):
        refuse(f"{what}: a width or precision over {limit:,} (limit)")
    largest = max((weight(v, limit) for v in values), default=0)
    if len(text) + len(conversions) * largest > limit:
        refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def check_replace(text: Any, old: Any, new: Any, limit: int, what: str) -> None:
    if isinstance(text, str) and isinstance(old, str) and isinstance(new, str):
        count = text.count(old) if old else len(text) + 1
        if len(text) + count * max(0, len(new) - len(old)) > limit:
            refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def check_join(items: list[Any], separator: Any, limit: int, what: str) -> None:
    size = weight(separator, limit) * max(0, len(items) - 1) + weight(items, limit)
    if size > limit:
        refuse(f"{what} would build a value longer than {limit:,} characters (limit)")


def check_width(width: Any, limit: int, what: str) -> None:
    if is_int(width) and width > limit:
        refuse(f"{what}: a width of {width:,} is over {limit:,} (limit)")


# Pre-checks of the filters that take a size, by name: (limit, value, *args, **kwargs).
def _f_center(limit: int, value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    check_width(width, limit, "center")


def _f_indent(limit: int, value: Any, width: Any = 4, *_: Any, **kwargs: Any) -> None:
    width = kwargs.get("width", width)
    each = len(width) if isinstance(width, str) else width if is_int(width) else 0
    lines = str(value).count("\n") + 1
    if len(str(value)) + lines * max(0, each) > limit:
        refuse(f"indent would build a value longer than {limit:,} characters (limit)")


def _f_wordwrap(limit: int, value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrapstring = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
    text = str(value)
    lines = len(text) // max(1, width if is_int(width) else 1) + 1
    if len(text) + lines * len(str(wrapstring)) > limit:
        refuse(f"wordwrap would build a value longer than {limit:,} characters (limit)")


def _f_format(limit: int, value: Any, *args: Any, **kwargs: Any) -> None:
    check_percent(str(value), kwargs or args, limit, "format")


def _f_replace(limit: int, value: Any, old: Any = "", new: Any = "", *_: Any, **__: Any) -> None:
    check_replace(str(value), str(old), str(new), limit, "replace")


def _f_with_cache(limit: int, value: Any, directory: Any = "", *_: Any, **__: Any) -> None:
    check_replace(str(value), "{cache}", str(directory), limit, "with_cache")


def _f_count(name: str, position: int) -> Callable[..., None]:
    def check(limit: int, value: Any, *args: Any, **kwargs: Any) -> None:
        count = args[position] if len(args) > position else kwargs.get(name)
        check_width(count, limit, f"{name}")

    return check


def _f_tojson(limit: int, value: Any, indent: Any = None, *_: Any, **__: Any) -> None:
    if is_int(indent) and indent > 16:
        refuse(f"tojson: an indent of {indent:,} is over 16 (limit)")


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


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` counted as a step, its size arguments checked, its result size checked."""
    if getattr(function, "timbel_bounded", False):
        return function
    offset = 1 if getattr(function, "jinja_pass_arg", None) is not None else 0
    check = _FILTER_CHECKS.get(name)

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        limit = step()
        if name == "join" and len(args) > offset:  # measure the items before joining
            items = list(args[offset])
            separator = args[offset + 1] if len(args) > offset + 1 else kwargs.get("d", "")
            check_join(items, separator, limit, "join")
            args = (*args[:offset], items, *args[offset + 1 :])
        elif check is not None and len(args) > offset:
            check(limit, *args[offset:], **kwargs)
        result = function(*args, **kwargs)
        check_size(result, f"the filter {name!r}", limit)
        return result

    bounded.timbel_bounded = True  # type: ignore[attr-defined]
    return bounded


def check_call(
    function: Any, args: tuple[Any, ...], kwargs: dict[str, Any], limit: int
) -> tuple[Any, ...]:
    """Calls that can build something large from small arguments; the arguments to call
    with (an iterable to join is read once, here)."""
    receiver = getattr(function, "__self__", None)
    name = getattr(function, "__name__", "")
    if isinstance(receiver, str):
        first = args[0] if args else None
        if name in {"center", "ljust", "rjust", "zfill"}:
            check_width(first, limit, name)
        elif name == "expandtabs":
            size = first if is_int(first) else 8
            if len(receiver) + receiver.count("\t") * size > limit:
                refuse(f"expandtabs would build a value longer than {limit:,} characters (limit)")
        elif name == "replace" and len(args) >= 2:
            check_replace(receiver, args[0], args[1], limit, "replace")
        elif name == "join" and args:
            items = list(args[0])
            check_join(items, receiver, limit, "join")
            args = (items, *args[1:])
    elif function is generate_lorem_ipsum:
        n = kwargs.get("n", args[0] if args else 5)
        words = kwargs.get("max", args[3] if len(args) > 3 else 100)
        if is_int(n) and is_int(words) and n * words * 8 > limit:
            refuse(f"lipsum would build a value longer than {limit:,} characters (limit)")
    return args


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) or value is None


def check_size_times(value: Any, times: int, limit: int, what: str) -> None:
    if isinstance(value, str | bytes | list | tuple) and weight(value, limit) * times > limit:
        refuse(f"{what} would build a value longer than {limit:,} characters (limit)")

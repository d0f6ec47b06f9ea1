"""The bounded template sandbox: Python internals are refused, and work, size and time are
limited, each with a one-line TemplateRefused (a jinja2 SecurityError)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import jinja2
import pytest
from jinja2.sandbox import SecurityError
from markupsafe import Markup

from timbel_dagster.security.template_sandbox import BoundedSandbox, Limits, TemplateRefused


def escapes(marker: Path) -> dict[str, str]:
    """Templates that run `touch MARKER` when rendered outside a sandbox."""
    touch = f"popen('touch {marker}').read()"
    return {
        "cycler": f"{{{{ cycler.__init__.__globals__.os.{touch} }}}}",
        "lipsum": f"{{{{ lipsum.__globals__['os'].{touch} }}}}",
        "self": (
            f"{{{{ self._TemplateReference__context.cycler.__init__.__globals__.os.{touch} }}}}"
        ),
        "subclasses": (
            "{% for c in ''.__class__.__mro__[1].__subclasses__() %}"
            "{% if c.__name__ == 'Popen' %}"
            f"{{{{ c(['touch', '{marker}']).wait() }}}}{{% endif %}}"
            "{% endfor %}"
        ),
        "attr filter": f"{{{{ (cycler|attr('__init__')|attr('__globals__')).os.{touch} }}}}",
        "format": "{{ '{0.__class__.__mro__}'.format('') }}",
    }


UNSAFE = {
    "cycler": "access to attribute '__init__' of 'type' object is unsafe",
    "lipsum": "access to attribute '__globals__' of 'function' object is unsafe",
    "self": "access to attribute '_TemplateReference__context' of 'TemplateReference' object",
    "subclasses": "access to attribute '__class__' of 'str' object is unsafe",
    "attr filter": "access to attribute '__init__' of 'type' object is unsafe",
    "format": "access to attribute '__class__' of 'str' object is unsafe",
}
NESTED_LOOPS = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def render(
    text: str, name: str | None = "t.j2", limits: Limits = Limits(), **values: object
) -> str:
    template = BoundedSandbox(limits=limits).from_string(text)
    template.name = name
    return template.render(**values)


def test_the_escapes_run_code_outside_the_sandbox(tmp_path: Path) -> None:
    """The payloads are real: plain Jinja2 runs them (what generate.py and the notification
    overrides used before)."""
    for name, text in escapes(tmp_path / "marker").items():
        if name == "format":
            continue
        (tmp_path / "marker").unlink(missing_ok=True)
        jinja2.Environment().from_string(text).render()  # nosec B701: the unsandboxed control
        assert (tmp_path / "marker").exists(), name


@pytest.mark.parametrize("name", list(UNSAFE))
def test_python_internals_are_refused_and_nothing_runs(name: str, tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    with pytest.raises(TemplateRefused) as refused:
        render(escapes(marker)[name])
    assert isinstance(refused.value, SecurityError) and isinstance(refused.value, ValueError)
    assert str(refused.value).startswith(f"template t.j2, line 1: {UNSAFE[name]}")
    assert "\n" not in str(refused.value)
    assert not marker.exists()


def test_builtin_lists_cannot_be_changed() -> None:
    with pytest.raises(TemplateRefused, match="attribute 'append' of 'list' object is unsafe"):
        render("{% set l = [] %}{{ l.append(1) }}")


@pytest.mark.timeout(10)
def test_nested_loops_stop_at_the_step_limit() -> None:
    started = time.perf_counter()
    with pytest.raises(TemplateRefused) as refused:
        render(NESTED_LOOPS)
    assert str(refused.value) == (
        "template t.j2, line 1: rendering stopped after 250,000 steps (limit)"
    )
    print(f"nested range(100000) loops refused in {time.perf_counter() - started:.2f} s")


@pytest.mark.timeout(10)
def test_a_loop_over_a_long_string_counts_every_item() -> None:
    text = "{% set s = 'x' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}"
    with pytest.raises(TemplateRefused, match=r"stopped after 250,000 steps \(limit\)"):
        render(text)


@pytest.mark.timeout(10)
def test_the_deadline_stops_slow_steps() -> None:
    # Two recursive calls per macro call: 2**40 calls, each a few steps of slow work. The step
    # limit is lifted so that only the deadline can stop it: with the default 250,000 steps,
    # a fast machine without coverage reached the step limit first (a race, not a test).
    text = "{% macro f(n) %}{% if n %}{{ f(n-1) }}{{ f(n-1) }}{% endif %}{% endmacro %}{{ f(40) }}"
    with pytest.raises(TemplateRefused, match=r"rendering stopped after 0\.5 s \(limit\)"):
        render(text, limits=Limits(seconds=0.5, steps=10**12))


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ 'a' * 10**9 }}", "'*' would build a value longer than 1,000,000 characters"),
        ("{{ [0] * 10**9 }}", "'*' would build a value longer than 1,000,000 characters"),
        ("{{ 9 ** (9 ** 9) }}", "'**' would build a number of more than 4,096 bits"),
        ("{% set n = 2 ** 3000 %}{{ n * n }}", "'*' would build a number of more than 4,096"),
        ("{{ 'x' | center(1000000000) }}", "center: a width of 1,000,000,000 is over 1,000,000"),
        ("{{ 'x'.ljust(1000000000) }}", "ljust: a width of 1,000,000,000 is over 1,000,000"),
        ("{{ '{:>999999999}'.format(1) }}", "format: a width or precision over 1,000,000"),
        ("{{ '%999999999d' % 1 }}", "'%': a width or precision over 1,000,000"),
        ("{{ '%.999999999f' | format(1.0) }}", "format: a width or precision over 1,000,000"),
        ("{{ [1] | batch(1000000000, 'x') | list }}", "linecount: a width of 1,000,000,000"),
        ("{{ 'xyz' * 300000 + 'xyz' * 300000 }}", "'+' would build a value longer than"),
        (
            "{% set s = 'xxxxxxxxxx' %}" + "{% set s = s ~ s %}" * 40 + "{{ s | length }}",
            "'~' would build a value longer than 1,000,000 characters",
        ),
        (
            "{% set a = [0] %}" + "{% set a = [a, a] %}" * 40 + "{{ a == a }}",
            "a literal would build a value longer than 1,000,000 characters",
        ),
        (
            "{% set ns = namespace(s='xx' * 500) %}{% for i in range(10) %}"
            "{% set ns.s = ns.s.replace('x', ns.s) %}{% endfor %}",
            "replace would build a value longer than 1,000,000 characters",
        ),
        ("{% set s = 'x' * 100000 %}{{ s | list | join(s) }}", "join would build a value longer"),
        ("{{ lipsum(n=1000000) }}", "lipsum would build a value longer than 1,000,000"),
    ],
)
def test_values_larger_than_the_limit_are_refused_before_they_are_built(
    text: str, message: str
) -> None:
    with pytest.raises(TemplateRefused, match=re.escape(message)):
        render(text)


@pytest.mark.timeout(10)
@pytest.mark.parametrize(
    "text",
    [
        "{% for i in range(100000) %}{{ 'x' * 100 }}{% endfor %}",
        # Built inside a macro and never printed: counts all the same.
        "{% macro m() %}{% for i in range(100000) %}{{ 'y' * 100000 }}{% endfor %}{% endmacro %}"
        "{% set x = m() %}",
        "{% set x %}{% for i in range(100000) %}" + "z" * 100 + "{% endfor %}{% endset %}",
    ],
)
def test_output_past_the_limit_is_refused(text: str) -> None:
    with pytest.raises(
        TemplateRefused, match=r"the output is longer than 1,000,000 characters \(limit\)"
    ):
        render(text)


def test_a_refusal_names_the_line_and_returns_nothing() -> None:
    with pytest.raises(TemplateRefused) as refused:
        render("ok\n{{ 'a' }}\n{{ ''.__class__ }}\n", name=None)
    assert str(refused.value) == (
        "template, line 3: access to attribute '__class__' of 'str' object is unsafe"
    )
    assert (refused.value.line, refused.value.detail) == (3, refused.value.detail)


def test_generate_and_stream_are_bounded_too() -> None:
    # A long deadline: this test is about the step budget reaching generate() and stream(),
    # not about which limit a loaded machine reaches first.
    template = BoundedSandbox(limits=Limits(seconds=300)).from_string(NESTED_LOOPS)
    with pytest.raises(TemplateRefused, match="steps"):
        list(template.generate())
    with pytest.raises(TemplateRefused, match="steps"):
        "".join(template.stream())


def test_ordinary_templates_render_as_before() -> None:
    text = (
        "{% for s in stages %}{{ loop.index }}/{{ loop.length }} {{ s.name | upper }}"
        "{{ ',' if not loop.last }}{% endfor %}|{{ stages | map(attribute='name') | join('+') }}"
        "|{{ '%05.1f' % 3.14159 }}|{{ '{}-{}'.format('a', 2) }}|{{ 'ab' * 2 }}|{{ 2 ** 10 }}"
        "|{{ [1, 2] + [3] }}|{{ {'k': 'v'} | dictsort }}|{{ 'x' ~ 1 }}|{{ 1.5 * 2 }}"
        "|{% set ns = namespace(n=0) %}{% for i in range(3) %}{% set ns.n = ns.n + i %}"
        "{% endfor %}{{ ns.n }}|{{ 'a b' | center(5) }}|{{ range(3) | list | length }}"
        "|{{ 9 ** 9 ** 9 }}"  # left-associative in Jinja2: (9 ** 9) ** 9, 78 digits
    )
    stages = [{"name": "build"}, {"name": "test"}]
    assert render(text, stages=stages) == (
        "1/2 BUILD,2/2 TEST|build+test|003.1|a-2|abab|1024|[1, 2, 3]|[('k', 'v')]|x1|3.0|3"
        "| a b |3|" + str((9**9) ** 9)
    )


def test_autoescape_is_kept() -> None:
    sandbox = BoundedSandbox(autoescape=True)
    text = "{{ v }}{{ '<b>' ~ v }}{% set m %}<i>{{ v }}</i>{% endset %}{{ m }}"
    assert sandbox.from_string(text).render(v="<x>") == (
        "&lt;x&gt;&lt;b&gt;&lt;x&gt;<i>&lt;x&gt;</i>"
    )
    text = "{{ ('<b>{}</b>' | safe).format(v) }}"  # Markup.format escapes its arguments
    assert sandbox.from_string(text).render(v="<x>") == "<b>&lt;x&gt;</b>"
    assert sandbox.from_string(text).render(v=Markup("<ok>")) == "<b><ok></b>"

"""Annotations a Jenkinsfile may not use: they make the Groovy compiler fetch or run code.

A Jenkinsfile is written by anyone who can push to a repository, and compiling it is not a
safe act by itself: `@Grab`/`@GrabResolver` make Groovy's global Grab transformation download
a jar while the file is compiled and load it (its own transformations then run), `@ASTTest`
runs its closure inside the compiler. Jenkins' script-security plugin refuses the same list in
sandboxed pipelines (`RejectASTTransformsCustomizer`), so such a file is invalid, with one error
per use at its line and column.

The list is sent to `groovy/check.groovy`, which finds the uses in the compiler's AST; without
a compiler, `refused_in_tokens` finds them in the light tokeniser's tokens.
"""

from __future__ import annotations

from typing import Any

from timbel_dagster.pipeline_templates.groovy_lexer import Token
from timbel_dagster.pipeline_templates.results import Issue, issue

_FETCHES = "it makes the Groovy compiler download and load code (Grape)"
REFUSED = {
    "groovy.lang.Grab": _FETCHES,
    "groovy.lang.GrabConfig": _FETCHES,
    "groovy.lang.GrabExclude": _FETCHES,
    "groovy.lang.GrabResolver": _FETCHES,
    "groovy.lang.Grapes": _FETCHES,
    "groovy.transform.ASTTest": "it runs its closure inside the Groovy compiler",
    "groovy.transform.AnnotationCollector": (
        "it can bundle annotations that run code in the Groovy compiler"
    ),
    "org.codehaus.groovy.transform.GroovyASTTransformationClass": (
        "it names a class for the Groovy compiler to run"
    ),
}
SANDBOX = "Jenkins refuses it in sandboxed pipelines"
# @CompileStatic/@TypeChecked(extensions='x.groovy') load and run that script when compiling.
_EXTENSIONS = "it makes the Groovy compiler run a type-checking script"
_MEMBER_ACCESS = {".", "?.", "*."}  # obj.@field is a field read, not an annotation


def refused_name(written: str, aliases: dict[str, str]) -> str | None:
    """The refused annotation `written` (as in the source) names, if any: a full name, an
    import alias, or a simple name (groovy.lang is imported by default, and a star import
    may bring groovy.transform)."""
    name = aliases.get(written, written)
    if name in REFUSED:
        return name
    if "." in name:
        return None
    return next((full for full in REFUSED if full.endswith(f".{name}")), None)


def refusal(found: dict[str, Any]) -> Issue:
    """The error for one use found (by check.groovy or the tokens): `what` is `annotation`,
    `import` or `extensions`; `written` as in the source; `name` the refused full name."""
    written, name = found["written"], found.get("name")
    if found["what"] == "import":
        message = f"import of {name} is not allowed in a Jenkinsfile: {REFUSED[name]}"
    elif found["what"] == "extensions":
        message = f"@{written}(extensions=...) is not allowed in a Jenkinsfile: {_EXTENSIONS}"
    else:
        alias = "" if written.split(".")[-1] == name.split(".")[-1] else f" (an alias of {name})"
        message = f"@{written}{alias} is not allowed in a Jenkinsfile: {REFUSED[name]}"
    return issue(found["line"], found["column"], f"{message}; {SANDBOX}")


def _dotted(tokens: list[Token], start: int) -> tuple[str, int]:
    """The name `a.b.C` starting at tokens[start], and the index after it."""
    parts, i = [tokens[start].text], start + 1
    while i + 1 < len(tokens) and tokens[i].text == "." and tokens[i + 1].kind == "ident":
        parts.append(tokens[i + 1].text)
        i += 2
    return ".".join(parts), i


def _setting_extensions(tokens: list[Token]) -> set[int]:
    """Indexes of the `(` tokens whose own argument list sets `extensions = ...` (one pass)."""
    opened: list[int] = []
    owners: set[int] = set()
    for j, token in enumerate(tokens):
        if token.kind == "op" and token.text in ("(", "[", "{"):
            opened.append(j)
        elif token.kind == "op" and token.text in (")", "]", "}"):
            if opened:
                opened.pop()
        elif (
            token.text == "extensions"
            and opened
            and tokens[opened[-1]].text == "("
            and tokens[j + 1 : j + 2] != []
            and tokens[j + 1].text == "="
        ):
            owners.add(opened[-1])
    return owners


def refused_in_tokens(tokens: list[Token]) -> list[Issue]:
    """The refused imports and annotations in a token stream (the fallback without groovy)."""
    aliases: dict[str, str] = {}
    found: list[dict[str, Any]] = []
    extensions = _setting_extensions(tokens)
    for i, token in enumerate(tokens):
        if token.kind == "ident" and token.text == "import" and i + 1 < len(tokens):
            start = i + 2 if tokens[i + 1].text == "static" else i + 1
            if start >= len(tokens) or tokens[start].kind != "ident":
                continue
            name, after = _dotted(tokens, start)
            alias = after + 1 < len(tokens) and tokens[after].text == "as"
            aliases[tokens[after + 1].text if alias else name.split(".")[-1]] = name
            if name in REFUSED:
                where = {"line": token.line, "column": token.column}
                found.append({**where, "what": "import", "written": name, "name": name})
    for i, token in enumerate(tokens):
        after_member = i > 0 and tokens[i - 1].kind == "op" and tokens[i - 1].text in _MEMBER_ACCESS
        if token.text != "@" or token.kind != "op" or after_member or i + 1 >= len(tokens):
            continue
        if tokens[i + 1].kind != "ident" or tokens[i + 1].text == "interface":
            continue
        written, after = _dotted(tokens, i + 1)
        name = refused_name(written, aliases)
        where = {"line": token.line, "column": token.column, "written": written}
        if name is not None:
            found.append({**where, "what": "annotation", "name": name})
        elif after in extensions:
            found.append({**where, "what": "extensions"})
    return [refusal(f) for f in found]

"""A light Groovy tokeniser: enough to see a Jenkinsfile's block structure.

It knows Groovy's comments and string forms (single, double and triple quotes, GStrings with
`${...}` holding nested code, slashy and dollar-slashy strings) so that braces inside them
never count, and it reports unterminated strings, comments and unbalanced brackets. It is not
a parser: the real Groovy compiler checks the syntax; this tokeniser feeds the declarative
checks and is the labelled fallback when no compiler is installed.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from timbel_dagster.pipeline_templates.results import Issue, issue

CLOSERS = {")": "(", "]": "[", "}": "{"}
# Deeper nesting is refused: the block grouping and `${...}` in strings recurse per level (a
# few KB of brackets would exhaust Python's stack), and no real Jenkinsfile comes near it.
MAX_NESTING = 200
# After these tokens a `/` divides; elsewhere it opens a slashy string.
_OPERAND_OPS = {")", "]", "}"}
_KEYWORDS_BEFORE_EXPR = {"return", "case", "assert", "in", "else", "throw", "instanceof"}
_MULTI_OPS = sorted(
    ["==~", "<=>", "?.", "*.", ".&", "?:", "=~", "==", "!=", "<=", ">=", "&&", "||", "->",
     "++", "--", "+=", "-=", "*=", "/=", "<<", ">>", "**", "::", ".."],
    key=len, reverse=True,
)  # fmt: skip
_MULTI_OPS_BY_FIRST = {c: [o for o in _MULTI_OPS if o[0] == c] for c in {o[0] for o in _MULTI_OPS}}


@dataclass(frozen=True)
class Token:
    """`kind` is ident, string, number, op or nl; `value` is a string literal's text when it
    has no interpolation."""

    kind: str
    text: str
    line: int
    column: int
    value: str | None = None


class _Unterminated(Exception):
    def __init__(self, offset: int, what: str) -> None:
        super().__init__(what)
        self.offset, self.what = offset, what


class _Lexer:
    def __init__(self, source: str) -> None:
        self.src = source
        self.pos = 0
        self.tokens: list[Token] = []
        self.line_starts = [0] + [i + 1 for i, ch in enumerate(source) if ch == "\n"]
        self.interpolations = 0  # `${...}` open around the current position

    def where(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.line_starts, offset)
        return line, offset - self.line_starts[line - 1] + 1

    def emit(self, kind: str, start: int, value: str | None = None) -> None:
        line, column = self.where(start)
        self.tokens.append(Token(kind, self.src[start : self.pos], line, column, value))

    def previous_is_operand(self) -> bool:
        for token in reversed(self.tokens):
            if token.kind == "nl":
                return False
            if token.kind == "ident":
                return token.text not in _KEYWORDS_BEFORE_EXPR
            return token.kind in ("string", "number") or token.text in _OPERAND_OPS
        return False

    def run(self, embedded: bool = False) -> None:
        """Tokenise until the end (or, inside `${...}`, until its closing brace)."""
        src, depth = self.src, 0
        if not embedded and src.startswith("#!"):
            self.pos = src.find("\n") if "\n" in src else len(src)
        while self.pos < len(src):
            ch, start = src[self.pos], self.pos
            nxt = src[self.pos + 1] if self.pos + 1 < len(src) else ""
            if ch == "\n":
                self.pos += 1
                self.emit("nl", start)
            elif ch in " \t\r\f" or (ch == "\\" and nxt == "\n"):
                self.pos += 2 if ch == "\\" else 1
            elif ch == "/" and nxt == "/":
                end = src.find("\n", self.pos)
                self.pos = len(src) if end < 0 else end
            elif ch == "/" and nxt == "*":
                end = src.find("*/", self.pos + 2)
                if end < 0:
                    raise _Unterminated(start, "comment /* ... */ is not closed")
                self.pos = end + 2
            elif ch in "'\"":
                self.string(ch)
            elif ch == "$" and nxt == "/":
                self.dollar_slashy()
            elif ch == "/" and not self.previous_is_operand() and nxt not in "=":
                self.slashy()
            elif ch.isalpha() or ch in "_$":
                while self.pos < len(src) and (src[self.pos].isalnum() or src[self.pos] in "_$"):
                    self.pos += 1
                self.emit("ident", start)
            elif ch.isdigit():
                while self.pos < len(src) and (src[self.pos].isalnum() or src[self.pos] in "._"):
                    if src[self.pos] == "." and not src[self.pos + 1 : self.pos + 2].isdigit():
                        break
                    self.pos += 1
                self.emit("number", start)
            else:
                if embedded and ch == "}" and depth == 0:
                    self.pos += 1
                    return
                depth += {"{": 1, "}": -1}.get(ch, 0)
                candidates = _MULTI_OPS_BY_FIRST.get(ch, ())
                op = next((o for o in candidates if src.startswith(o, self.pos)), ch)
                self.pos += len(op)
                self.emit("op", start)
        if embedded:
            raise _Unterminated(self.pos, "${ is not closed")

    def interpolation(self) -> None:
        """Skip a `${...}` inside a GString, nested strings and closures included."""
        start = self.pos
        if self.interpolations >= MAX_NESTING:
            raise _Unterminated(start, f"${{...}} nested more than {MAX_NESTING} levels deep")
        self.pos += 2
        saved = self.tokens
        self.tokens = []
        self.interpolations += 1
        try:
            self.run(embedded=True)
        except _Unterminated as error:
            if error.what != "${ is not closed":
                raise
            raise _Unterminated(start, "${ in a string is not closed") from None
        finally:
            self.tokens = saved
            self.interpolations -= 1

    def string(self, quote: str) -> None:
        src, start = self.src, self.pos
        triple = src.startswith(quote * 3, start)
        delimiter = quote * 3 if triple else quote
        self.pos += len(delimiter)
        plain = True
        while True:
            if self.pos >= len(src) or (not triple and src[self.pos] == "\n"):
                what = "triple-quoted string" if triple else "string"
                raise _Unterminated(start, f"{what} starting with {delimiter} is not closed")
            ch = src[self.pos]
            if ch == "\\":
                self.pos += 2
            elif src.startswith(delimiter, self.pos):
                self.pos += len(delimiter)
                break
            elif quote == '"' and src.startswith("${", self.pos):
                plain = False
                self.interpolation()
            else:
                plain = plain and not (quote == '"' and ch == "$")
                self.pos += 1
        body = src[start + len(delimiter) : self.pos - len(delimiter)]
        self.emit("string", start, body if plain else None)

    def slashy(self) -> None:
        src, start = self.src, self.pos
        self.pos += 1
        while True:
            if self.pos >= len(src):
                raise _Unterminated(start, "slashy string /.../ is not closed")
            if src[self.pos] == "\\":
                self.pos += 2
            elif src[self.pos] == "/":
                self.pos += 1
                break
            elif src.startswith("${", self.pos):
                self.interpolation()
            else:
                self.pos += 1
        self.emit("string", start)

    def dollar_slashy(self) -> None:
        src, start = self.src, self.pos
        self.pos += 2
        while not src.startswith("/$", self.pos):
            if self.pos >= len(src):
                raise _Unterminated(start, "dollar-slashy string $/.../$ is not closed")
            if src.startswith(("$$", "$/"), self.pos):
                self.pos += 2
            elif src.startswith("${", self.pos):
                self.interpolation()
            else:
                self.pos += 1
        self.pos += 2
        self.emit("string", start)


def tokenize(source: str) -> tuple[list[Token], list[Issue]]:
    """Tokens of a Groovy source, and the unterminated string or comment if there is one
    (tokenising stops there)."""
    lexer = _Lexer(source)
    try:
        lexer.run()
    except _Unterminated as error:
        line, column = lexer.where(error.offset)
        return lexer.tokens, [issue(line, column, error.what)]
    return lexer.tokens, []


def balance_issues(tokens: list[Token]) -> list[Issue]:
    """Brackets that close nothing, close the wrong opener, or stay open at the end."""
    stack: list[Token] = []
    problems: list[Issue] = []
    for token in tokens:
        if token.kind != "op":
            continue
        if token.text in "([{":
            stack.append(token)
        elif token.text in CLOSERS:
            if not stack:
                problems.append(issue(token.line, token.column, f"'{token.text}' closes nothing"))
                continue
            opener = stack.pop()
            if opener.text != CLOSERS[token.text]:
                problems.append(
                    issue(
                        token.line,
                        token.column,
                        f"'{token.text}' does not match '{opener.text}' opened at line "
                        f"{opener.line}, column {opener.column}",
                    )
                )
                return problems
    problems.extend(issue(t.line, t.column, f"'{t.text}' is never closed") for t in reversed(stack))
    return problems


def nesting_issue(tokens: list[Token]) -> Issue | None:
    """The first bracket opened deeper than MAX_NESTING levels, if any."""
    depth = 0
    for token in tokens:
        if token.kind != "op":
            continue
        if token.text in ("(", "[", "{"):
            depth += 1
            if depth > MAX_NESTING:
                message = f"brackets nested more than {MAX_NESTING} levels deep"
                return issue(token.line, token.column, message)
        elif token.text in CLOSERS:
            depth -= 1
    return None


def fallback_check(lexed: tuple[list[Token], list[Issue]]) -> list[Issue]:
    """The lighter check used when no Groovy compiler is installed: strings, comments and
    brackets balance (given what `tokenize` returned). It catches far fewer errors than the
    compiler."""
    tokens, problems = lexed
    return problems or balance_issues(tokens)

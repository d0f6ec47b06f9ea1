"""Groovy tokens grouped into statements and `{ }` blocks: `name args { body }`.

A Jenkinsfile's declarative structure is exactly such nesting (`pipeline { agent any; stages {
stage('x') { steps { ... } } } }`), so this grouping is all the declarative checks need. Code
inside blocks is grouped the same way and simply not looked at by them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from timbel_dagster.pipeline_templates.groovy_lexer import Token

# A line ending with one of these continues on the next line.
_CONTINUATIONS = {",", "=", "+", "-", "*", "/", ".", "?.", "&&", "||", "?", ":", "?:", "->"}


@dataclass
class Statement:
    """One statement: its leading identifier, the tokens after it up to its first block, and
    that block's statements (None when it has no block)."""

    name: str
    token: Token
    args: list[Token] = field(default_factory=list)
    body: list[Statement] | None = None

    @property
    def has_block(self) -> bool:
        return self.body is not None

    def string_argument(self) -> str | None:
        """The first string literal among the arguments: `stage('Build')` -> `Build`."""
        for token in self.args:
            if token.kind == "string":
                return token.value if token.value is not None else token.text
        return None


class _Grouper:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0

    def peek(self, offset: int = 0) -> Token | None:
        index = self.i + offset
        return self.tokens[index] if index < len(self.tokens) else None

    def next_significant(self) -> Token | None:
        index = self.i
        while index < len(self.tokens) and self.tokens[index].kind == "nl":
            index += 1
        return self.tokens[index] if index < len(self.tokens) else None

    def body(self) -> list[Statement]:
        """Statements up to the `}` closing the current block (consumed) or the end."""
        statements: list[Statement] = []
        while (token := self.peek()) is not None:
            if token.kind == "nl" or token.text == ";":
                self.i += 1
            elif token.text == "}":
                self.i += 1
                return statements
            elif token.kind == "ident":
                statements.append(self.statement())
            else:
                self.skip_statement()
        return statements

    def group(self) -> None:
        """Skip a bracketed group, blocks inside it parsed for balance and dropped."""
        closer = {"(": ")", "[": "]"}[self.tokens[self.i].text]
        self.i += 1
        while (token := self.peek()) is not None:
            self.i += 1
            if token.text == closer:
                return
            if token.text in "([":
                self.i -= 1
                self.group()
            elif token.text == "{":
                self.body()

    def statement(self) -> Statement:
        current = Statement(self.tokens[self.i].text, self.tokens[self.i])
        self.i += 1
        self.rest_of_statement(current)
        return current

    def skip_statement(self) -> None:
        self.rest_of_statement(Statement("", self.tokens[self.i]))

    def rest_of_statement(self, current: Statement) -> None:
        last: Token | None = current.token
        while (token := self.peek()) is not None:
            if token.text in (";", "}"):
                return
            if token.kind == "nl":
                following = self.next_significant()
                continues = last is not None and last.text in _CONTINUATIONS
                chained = following is not None and following.text in (".", "?.", "*.")
                if not (continues or chained):
                    return
                self.i += 1
                continue
            if token.text in "([":
                start = self.i
                self.group()
                current.args.extend(t for t in self.tokens[start : self.i] if t.kind != "nl")
            elif token.text == "{":
                self.i += 1
                block = self.body()
                if current.body is None:
                    current.body = block
            else:
                current.args.append(token)
                self.i += 1
            last = self.tokens[self.i - 1]


def group_statements(tokens: list[Token]) -> list[Statement]:
    """The top-level statements of a tokenised Groovy file."""
    grouper = _Grouper(tokens)
    statements: list[Statement] = []
    while grouper.peek() is not None:
        statements.extend(grouper.body())  # a stray `}` ends body(); carry on after it
    return statements

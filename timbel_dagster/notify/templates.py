"""Rendering notifications from Jinja2 templates: Slack Block Kit JSON and e-mail parts.

For each event there are four files, found by name, first in TIMBEL_TEMPLATES_DIR (when set)
and then in the package's `templates/` directory, so a team overrides any of them (or the
shared `_slack.json` / `_email.html` / `_email.txt`) by dropping a file of the same name:

- `<event>.slack.json`: a Block Kit message, written as JSON text whose values go through
  `tojson` (and `mrkdwn` for Slack's markup) and parsed after rendering;
- `<event>.subject.txt`, `<event>.html` (autoescaped) and `<event>.txt`: the e-mail.

Undefined names are errors (StrictUndefined), so a typo in a template fails with the template's
file and line instead of sending a message with a hole in it. Overrides are written by whoever
can write to that directory, so all templates render in the bounded sandbox
(`security.template_sandbox`): no Python internals, limits on work, size and time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from timbel_dagster.notify.errors import TemplateRefusedError, TemplateRenderError
from timbel_dagster.notify.messages import Message, Recipient
from timbel_dagster.security.template_sandbox import BoundedSandbox, TemplateRefused

if TYPE_CHECKING:
    import jinja2

PACKAGE = "timbel_dagster.notify"
_SUBJECT_LIMIT = 250


@dataclass(frozen=True)
class RenderedEmail:
    """The three parts of one e-mail."""

    subject: str
    html: str
    text: str


def template_names(event: str) -> dict[str, str]:
    """The file names of an event's templates, by part."""
    return {
        "slack": f"{event}.slack.json",
        "subject": f"{event}.subject.txt",
        "html": f"{event}.html",
        "text": f"{event}.txt",
    }


def mrkdwn(value: object) -> str:
    """Escape Slack's control characters, so a value cannot ping `<!channel>` or forge a link."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def context_fields(context: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The message's context as (label, text) pairs, in order, leaving out empty values."""
    fields = []
    for key, value in context.items():
        if value is None or value == "":
            continue
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, dict | list | tuple):
            text = json.dumps(value, default=str, ensure_ascii=False)
        else:
            text = str(value)
        label = str(key).replace("_", " ")
        fields.append((label[:1].upper() + label[1:], text))
    return fields


def _json_default(value: object) -> object:
    """`tojson` of an undefined name: raise the undefined error that names it, instead of
    json's "Object of type StrictUndefined is not JSON serializable"."""
    import jinja2

    if isinstance(value, jinja2.Undefined):
        value._fail_with_undefined_error()
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


def _template_position(error: BaseException) -> tuple[str | None, int | None]:
    """The innermost template file and line in `error`'s traceback.

    Jinja rewrites tracebacks so that template code appears as frames whose file is the
    template itself; the last such frame is where rendering failed.
    """
    found: tuple[str | None, int | None] = (None, None)
    tb = error.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not filename.endswith(".py") and not filename.startswith("<"):
            found = (filename, tb.tb_lineno)
        tb = tb.tb_next
    return found


class Templates:
    """The notification templates, with an optional directory of overrides searched first.

    Args:
        directory: TIMBEL_TEMPLATES_DIR: templates here replace the packaged ones by name.

    Raises:
        ValueError: `directory` is given but is not a directory.
    """

    def __init__(self, directory: Path | None = None) -> None:
        import jinja2

        loaders: list[jinja2.BaseLoader] = []
        if directory is not None:
            if not Path(directory).is_dir():
                raise ValueError(f"TIMBEL_TEMPLATES_DIR: {directory} is not a directory")
            loaders.append(jinja2.FileSystemLoader(str(directory)))
        loaders.append(jinja2.PackageLoader(PACKAGE, "templates"))
        self.directory = directory
        self._env = BoundedSandbox(
            loader=jinja2.ChoiceLoader(loaders),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(
                enabled_extensions=("html",), default_for_string=False, default=False
            ),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._env.filters["mrkdwn"] = mrkdwn
        self._env.policies["json.dumps_kwargs"] = {"sort_keys": True, "default": _json_default}

    def _load(self, name: str) -> jinja2.Template:
        import jinja2

        try:
            return self._env.get_template(name)
        except jinja2.TemplateSyntaxError as error:
            raise TemplateRenderError(
                error.name or name, error.message or "syntax error", error.filename, error.lineno
            ) from None
        except jinja2.TemplateNotFound as error:
            where = f"{self.directory} or the package" if self.directory else "the package"
            missing = error.name if error.name != name else name
            raise TemplateRenderError(name, f"template {missing} not found in {where}") from None

    def render(self, name: str, **values: Any) -> tuple[str, str | None]:
        """Render template `name`; returns the text and the file it was loaded from.

        Raises:
            TemplateRenderError: it does not exist, does not parse, or fails to render
                (an undefined name, an error in an expression); names the file and line.
            TemplateRefusedError: the sandbox refused it (Python internals, a limit).
        """
        import jinja2

        template = self._load(name)
        try:
            return template.render(**values), template.filename
        except TemplateRefused as error:
            raise TemplateRefusedError(
                name, error.detail, error.filename or template.filename, error.line
            ) from None
        except jinja2.TemplateSyntaxError as error:  # an imported or extended template
            raise TemplateRenderError(
                error.name or name, error.message or "syntax error", error.filename, error.lineno
            ) from None
        except jinja2.TemplateNotFound as error:
            raise TemplateRenderError(name, f"template {error.name} not found") from None
        except Exception as error:
            filename, line = _template_position(error)
            detail = f"{type(error).__name__}: {error}"
            raise TemplateRenderError(name, detail, filename or template.filename, line) from None

    def _values(self, message: Message, **extra: Any) -> dict[str, Any]:
        return {
            "message": message,
            "event_label": message.event.replace("_", " "),
            "fields": context_fields(message.context),
            **extra,
        }

    def slack(self, message: Message, mentions: Sequence[str] = ()) -> dict[str, Any]:
        """The Block Kit payload for `message`, with `mentions` (`<@U123>` or `@name`).

        Raises:
            TemplateRenderError: the template fails, or its output is not a JSON object.
        """
        name = template_names(message.event)["slack"]
        text, filename = self.render(name, **self._values(message, mentions=list(mentions)))
        try:
            payload = json.loads(text)
        except json.JSONDecodeError as error:
            lines = text.splitlines()
            shown = lines[error.lineno - 1].strip() if 0 < error.lineno <= len(lines) else ""
            raise TemplateRenderError(
                name,
                f"output is not valid JSON: {error.msg} at output line {error.lineno}, "
                f"column {error.colno}: {shown[:120]!r}",
                filename,
            ) from None
        if not isinstance(payload, dict) or not ({"text", "blocks"} & payload.keys()):
            raise TemplateRenderError(
                name, "output must be a JSON object with 'text' or 'blocks'", filename
            )
        return payload

    def email(
        self,
        message: Message,
        recipient: Recipient | None = None,
        unsubscribe_url: str | None = None,
        public_url: str | None = None,
    ) -> RenderedEmail:
        """Subject, HTML and plain text of the e-mail about `message` to `recipient`.

        Raises:
            TemplateRenderError: a template fails, or the subject renders empty.
        """
        names = template_names(message.event)
        values = self._values(
            message, recipient=recipient, unsubscribe_url=unsubscribe_url, public_url=public_url
        )
        subject_text, filename = self.render(names["subject"], **values)
        # One line: a newline in a subject header would end the header (or start a new one).
        subject = " ".join(subject_text.split())[:_SUBJECT_LIMIT]
        if not subject:
            raise TemplateRenderError(names["subject"], "the subject is empty", filename)
        html, _ = self.render(names["html"], **values)
        text, _ = self.render(names["text"], **values)
        return RenderedEmail(subject=subject, html=html, text=text.strip() + "\n")

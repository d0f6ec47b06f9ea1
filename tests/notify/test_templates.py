from __future__ import annotations

from pathlib import Path

import pytest

from timbel_dagster.notify.errors import TemplateRenderError
from timbel_dagster.notify.messages import EVENTS, Message, Recipient
from timbel_dagster.notify.templates import Templates, context_fields, mrkdwn


def _message(event: str = "pipeline_failed", **changes: object) -> Message:
    values: dict = {
        "event": event,
        "key": f"{event}:1",
        "title": 'Build #42 of "shop/api" failed',
        "severity": "high",
        "context": {"pipeline": "shop/api", "branch": "main", "duration": "4m 2s", "skip": None},
        "url": "https://ci.example.com/job/shop/42?x=1&y=2",
    }
    values.update(changes)
    return Message(**values)


@pytest.mark.parametrize("event", EVENTS)
def test_every_event_renders_block_kit_and_email(event: str) -> None:
    templates = Templates()
    payload = templates.slack(_message(event), ["<@U0ANN>", "@bob"])
    kinds = [block["type"] for block in payload["blocks"]]
    assert kinds == ["header", "section", "context", "actions"]
    assert payload["blocks"][0]["text"] == {
        "type": "plain_text",
        "text": 'Build #42 of "shop/api" failed',
        "emoji": True,
    }
    section = payload["blocks"][1]
    assert section["text"]["text"].startswith("<@U0ANN> @bob\n")
    assert [f["text"] for f in section["fields"]] == [
        "*Pipeline*\nshop/api",
        "*Branch*\nmain",
        "*Duration*\n4m 2s",
    ]
    button = payload["blocks"][3]["elements"][0]
    assert button["url"] == "https://ci.example.com/job/shop/42?x=1&y=2"
    assert "<@U0ANN>" in payload["text"]

    mail = templates.email(_message(event), Recipient("ann", "Ann Example"), "https://t/u?token=x")
    assert "Build #42" in mail.subject and "\n" not in mail.subject
    assert "Hello Ann Example" in mail.text and "https://t/u?token=x" in mail.text
    assert "https://ci.example.com/job/shop/42?x=1&amp;y=2" in mail.html
    assert "&#34;shop/api&#34;" in mail.html  # autoescaped


def test_slack_without_url_fields_or_mentions_has_no_button() -> None:
    payload = Templates().slack(_message(url=None, context={}))
    assert [block["type"] for block in payload["blocks"]] == ["header", "section", "context"]
    assert "fields" not in payload["blocks"][1]


def test_message_text_cannot_break_json_or_ping_the_channel() -> None:
    title = 'quote " backslash \\ newline \n <!channel> & <https://evil|click>'
    payload = Templates().slack(_message(title=title, context={"note": title}))
    assert payload["blocks"][0]["text"]["text"] == title  # plain_text: shown as is
    field = payload["blocks"][1]["fields"][0]["text"]
    assert (
        "<!channel>" not in field and "&lt;!channel&gt; &amp; &lt;https://evil|click&gt;" in field
    )


def test_html_is_escaped_and_text_is_not() -> None:
    mail = Templates().email(_message(title="<script>alert(1)</script>"))
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "<script>alert(1)</script>" in mail.text


def test_fields_and_mrkdwn() -> None:
    assert context_fields({"build_number": 42, "ok": True, "tags": ["a"], "none": None}) == [
        ("Build number", "42"),
        ("Ok", "yes"),
        ("Tags", '["a"]'),
    ]
    assert mrkdwn("a < b & c > d") == "a &lt; b &amp; c &gt; d"


def test_a_template_directory_overrides_by_file_name(tmp_path: Path) -> None:
    (tmp_path / "pipeline_failed.subject.txt").write_text("CUSTOM {{ message.title }}\n")
    (tmp_path / "_email.txt").write_text("Team layout: {% block summary %}{% endblock %}\n")
    mail = Templates(tmp_path).email(_message(title="t"))
    assert mail.subject == "CUSTOM t"
    assert mail.text == "Team layout: The pipeline shop/api failed.\n"
    assert "<html" in mail.html  # not overridden: the packaged template
    assert Templates(tmp_path).email(_message("pipeline_done", title="t")).subject != "CUSTOM t"


def test_a_missing_templates_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"TIMBEL_TEMPLATES_DIR: .*nope is not a directory"):
        Templates(tmp_path / "nope")


def test_an_undefined_name_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "run_failed.txt").write_text("line one\n{{ message.titel }}\n")
    with pytest.raises(TemplateRenderError) as error:
        Templates(tmp_path).email(_message("run_failed"))
    assert error.value.filename == str(tmp_path / "run_failed.txt")
    assert error.value.line == 2
    assert "titel" in str(error.value) and "run_failed.txt, line 2" in str(error.value)


def test_a_syntax_error_names_the_template_and_line(tmp_path: Path) -> None:
    (tmp_path / "run_failed.html").write_text("<p>\n{% if message.url %}\n")
    with pytest.raises(TemplateRenderError, match=r"run_failed.html, line \d: .*endif"):
        Templates(tmp_path).email(_message("run_failed"))


def test_invalid_json_names_the_template_and_the_output_line(tmp_path: Path) -> None:
    # A team template that forgot `tojson`: a quote in the title breaks the JSON.
    (tmp_path / "alert_fired.slack.json").write_text('{\n  "text": "{{ message.title }}"\n}\n')
    with pytest.raises(TemplateRenderError) as error:
        Templates(tmp_path).slack(_message("alert_fired"))
    message = str(error.value)
    assert str(tmp_path / "alert_fired.slack.json") in message
    assert "not valid JSON" in message and "output line 2" in message


def test_json_that_is_not_a_message_is_refused(tmp_path: Path) -> None:
    (tmp_path / "alert_fired.slack.json").write_text("[1, 2]")
    with pytest.raises(TemplateRenderError, match="JSON object with 'text' or 'blocks'"):
        Templates(tmp_path).slack(_message("alert_fired"))


def test_an_empty_subject_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "issue_created.subject.txt").write_text("{# nothing #}\n")
    with pytest.raises(
        TemplateRenderError, match=r"issue_created\.subject\.txt: the subject is empty"
    ):
        Templates(tmp_path).email(_message("issue_created"))


def test_an_undefined_name_inside_tojson_is_named(tmp_path: Path) -> None:
    (tmp_path / "alert_fired.slack.json").write_text('{\n"text": {{ message.nope | tojson }}}')
    with pytest.raises(TemplateRenderError, match=r"alert_fired.slack.json, line 2: .*'nope'"):
        Templates(tmp_path).slack(_message("alert_fired"))

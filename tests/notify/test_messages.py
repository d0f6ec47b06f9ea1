from __future__ import annotations

import pytest

from timbel_dagster.notify.messages import EVENTS, Message, Recipient, severity_rank


def test_message_validates_event_and_severity() -> None:
    with pytest.raises(ValueError, match="unknown notification event 'pipeline_ok'") as error:
        Message("pipeline_ok", "k", "t")
    assert all(event in str(error.value) for event in EVENTS)
    with pytest.raises(ValueError, match="unknown severity 'fatal'; valid: critical, high"):
        Message("alert_fired", "k", "t", severity="fatal")
    with pytest.raises(ValueError, match="empty key"):
        Message("alert_fired", " ", "t")


def test_message_is_frozen_with_tuple_mentions() -> None:
    message = Message("approval_requested", "k", "t", mentions=["ann", "bob"])  # type: ignore[arg-type]
    assert message.mentions == ("ann", "bob")
    assert Message("run_failed", "k", "t").context == {}
    with pytest.raises(AttributeError):
        message.title = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("recipient", "mention"),
    [
        (Recipient("ann", slack_id="U0ANN"), "<@U0ANN>"),
        (Recipient("bob"), "@bob"),
    ],
)
def test_slack_mention(recipient: Recipient, mention: str) -> None:
    assert recipient.slack_mention == mention


def test_severity_rank_orders_most_severe_first() -> None:
    assert severity_rank("critical") < severity_rank("high") < severity_rank("info")

"""The per-operator rules of the lifecycle, decided from outbox and delivery facts alone."""

from __future__ import annotations

import pytest

from services.lifecycle import (
    Action,
    Message,
    holds,
    owes_late_retraction,
    plan,
    retraction_recipients,
)


def msg(
    operator: str,
    kind: str,
    version: int,
    *,
    status: str = "pending",
    attempts: int = 0,
    published: bool = False,
    suppressed: bool = False,
) -> Message:
    return Message(
        operator,
        kind,
        version,
        f"{operator}-{kind}-{version}",
        status,
        attempts,
        published,
        suppressed,
    )


@pytest.mark.parametrize(
    ("held", "had_cells", "has_cells", "expected"),
    [
        (None, False, False, Action.nothing),
        (None, True, False, Action.nothing),
        (None, False, True, Action.dispatch),  # never had it, or its message was suppressed
        (None, True, True, Action.dispatch),  # retracted by an earlier narrowing, covered again
        (1, True, True, Action.update),
        (1, False, True, Action.update),  # held a cell-less version: now it has cells
        (1, True, False, Action.retract),  # the area no longer covers it
        (1, False, False, Action.update),  # still cell-less: keep its copy current
    ],
)
def test_plan(held: int | None, had_cells: bool, has_cells: bool, expected: Action) -> None:
    assert plan(held, had_cells, has_cells) is expected


def test_suppressed_messages_do_not_count_unless_they_went_out_anyway() -> None:
    assert holds([msg("a", "dispatch", 1, suppressed=True, status="suppressed")], "a") is None
    # Published after its suppression: the worker drops it unless it already sent it,
    # and records which; only an attempt or a delivery counts.
    assert holds([msg("a", "dispatch", 1, suppressed=True, published=True)], "a") is None
    assert holds([msg("a", "dispatch", 1, suppressed=True, status="delivered")], "a") == 1
    assert holds([msg("a", "dispatch", 1, suppressed=True, attempts=1)], "a") == 1
    # Published, or still queued: it may have reached the operator.
    assert holds([msg("a", "dispatch", 1)], "a") == 1
    assert holds([msg("a", "dispatch", 1, published=True)], "a") == 1


def test_holds_the_newest_version_that_may_have_reached_it() -> None:
    messages = [
        msg("a", "dispatch", 1, published=True),
        msg("a", "update", 2, suppressed=True, status="suppressed"),
        msg("b", "dispatch", 1, published=True),
        msg("b", "retraction", 2),
        msg("c", "dispatch", 1, published=True),
        msg("c", "retraction", 2),
        msg("c", "dispatch", 3),
    ]
    assert holds(messages, "a") == 1  # its v2 update never went out: previous_version is 1
    assert holds(messages, "b") is None  # narrowed away
    assert holds(messages, "c") == 3  # covered again
    assert holds(messages, "d") is None


def test_retraction_goes_to_every_operator_the_alert_may_have_reached() -> None:
    messages = [
        msg("a", "dispatch", 1, published=True),
        msg("b", "dispatch", 1, suppressed=True, status="suppressed"),
        msg("c", "dispatch", 1, status="retrying", attempts=2),
        msg("d", "dispatch", 1, published=True),
        msg("d", "retraction", 2),
    ]
    assert retraction_recipients(messages, ["a", "b", "c", "d", "e"]) == ["a", "c", "d"]


def test_late_publish_is_owed_a_retraction_only_when_nothing_takes_it_back() -> None:
    late = msg("a", "dispatch", 1, suppressed=True, status="delivered", attempts=1, published=True)
    left_out = msg("a", "retraction", 2, status="suppressed")
    owed = msg("a", "retraction", 2)
    assert owes_late_retraction([late, left_out], "a", 2, ended=True)
    assert not owes_late_retraction([late, owed], "a", 2, ended=True)
    never_out = msg("a", "dispatch", 1, suppressed=True, status="suppressed")
    assert not owes_late_retraction([never_out, left_out], "a", 2, ended=True)
    # Active alert, version 2 sent nothing to "a" (it held nothing and had no cells).
    assert owes_late_retraction([late], "a", 2, ended=False)
    assert not owes_late_retraction([late, msg("a", "dispatch", 2)], "a", 2, ended=False)
    assert not owes_late_retraction([late, msg("a", "retraction", 2)], "a", 2, ended=False)

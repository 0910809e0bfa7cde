"""A record is parsed once per process, however many workers read it."""

from __future__ import annotations

from operator_adapters.worker import parse_event
from tests.unit.adapters import events


def test_every_worker_gets_the_same_parsed_event_for_the_same_record() -> None:
    event = events.dispatch("vodafone")
    record = event.model_dump_json().encode()
    first = parse_event(record)
    assert first is not None
    assert first.model_dump_json() == event.model_dump_json()
    assert parse_event(bytes(record)) is first  # an equal record from another fetch too


def test_distinct_records_stay_distinct_and_garbage_is_none() -> None:
    turkcell = parse_event(events.dispatch("turkcell").model_dump_json().encode())
    vodafone = parse_event(events.dispatch("vodafone").model_dump_json().encode())
    assert turkcell is not None
    assert vodafone is not None
    assert turkcell.operators == ["turkcell"]
    assert vodafone.operators == ["vodafone"]
    assert parse_event(b"{not json") is None
    assert parse_event(None) is None

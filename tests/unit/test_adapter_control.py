"""serve's line protocol to its adapter child: published offsets survive the trip."""

from __future__ import annotations

from services.adapter_process import decode_published, encode_published


def test_published_ends_round_trip() -> None:
    ends = {("kayip.alert-events.v1", 3): 1042, ("kayip.alert-retractions.v1", 0): 7}
    line = encode_published(ends)
    assert line.endswith(b"\n")
    assert decode_published(line.decode().strip()) == ends


def test_other_lines_are_not_published_ends() -> None:
    assert decode_published("0b7c5a0e-8f0e-4a43-9d58-2b8f1d8f5e11") is None  # an alert id
    assert decode_published("> kayip.alert-events.v1 3") is None  # a triple cut short
    assert decode_published("> kayip.alert-events.v1 three 4") is None
    assert decode_published(">") == {}

"""No log call of ours may name a LogRecord attribute in ``extra``.

``logging`` raises KeyError for such a key ("Attempt to overwrite 'created' in
LogRecord") inside the call that logs: the topic keeper's warning after a broker
restart did exactly that, and the task that was repairing the topics died with it.
"""

from __future__ import annotations

import ast
import logging
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("alert_api", "schemas", "services", "geofence", "operator_adapters")
RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _extra_keys(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        for keyword in node.keywords:
            if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                for key in keyword.value.keys:
                    if isinstance(key, ast.Constant) and isinstance(key.value, str):
                        found.append((key.lineno, key.value))
    return found


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (ROOT / package).rglob("*.py"))


def test_the_scan_sees_our_log_calls() -> None:
    keys = [k for path in _sources() for _, k in _extra_keys(ast.parse(path.read_text()))]
    assert "operator" in keys
    assert len(keys) > 50


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_extra_key_overwrites_a_log_record_attribute(path: Path) -> None:
    clashes = [
        (line, key) for line, key in _extra_keys(ast.parse(path.read_text())) if key in RESERVED
    ]
    assert clashes == []

"""The "callers waiting, nobody logged in" alert's check (pypbx.alerts.NobodyWatch)."""

from __future__ import annotations

from pypbx.alerts import AlertKind, NobodyWatch


def test_bad_only_after_the_delay_and_only_while_nobody_is_logged_in() -> None:
    w = NobodyWatch(after=60)
    [v] = w.checks([("front", 2, 0)], 1000.0)
    assert (v.kind, v.subject, v.bad) == (AlertKind.NOBODY_ANSWERING, "front", False)
    [v] = w.checks([("front", 1, 0)], 1059.0)
    assert not v.bad
    [v] = w.checks([("front", 1, 0)], 1060.0)
    assert v.bad and v.message == "queue front: 1 caller(s) waiting for 60 s and no agent logged in"
    [v] = w.checks([("front", 1, 1)], 1061.0)  # someone logged in: fine, the clock restarts
    assert not v.bad
    [v] = w.checks([("front", 1, 0)], 1062.0)
    assert not v.bad
    # nobody logged in but nobody waiting (night, closed): not an alert
    [v] = NobodyWatch(after=0).checks([("night", 0, 0)], 5.0)
    assert not v.bad

from tokenwarden.state import TrackedState


def test_tracked_state_reports_changes_once() -> None:
    s = TrackedState({"a": 1})
    s["b"] = 2
    s["a"] = 3
    del s["b"]
    s["c"] = 4
    changed, deleted = s.take_changes()
    assert changed == {"a": 3, "c": 4}
    assert deleted == {"b"}
    assert s.take_changes() == ({}, set())
    assert dict(s) == {"a": 3, "c": 4}

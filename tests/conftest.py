"""Shared fixtures; and under ``CI=true`` a skipped integration test fails the run."""

from __future__ import annotations

import os

import pytest

_skipped_integration: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.skipped and "integration" in report.keywords:
        _skipped_integration.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("CI", "").lower() in {"1", "true", "yes"} and _skipped_integration:
        session.config.stash[_ci_key] = list(_skipped_integration)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    skipped = terminalreporter.config.stash.get(_ci_key, [])
    if skipped:
        terminalreporter.section("integration tests skipped under CI=true", red=True)
        for nodeid in skipped:
            terminalreporter.line(f"SKIPPED IN CI (fails the run): {nodeid}")


_ci_key = pytest.StashKey[list[str]]()

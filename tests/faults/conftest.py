"""The large fault run is marked `faults`: `make faults` selects it (`-m faults`); `make test` skips it.
Every fault run's counts are printed in the terminal summary, with or without `-s`."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "faults: the large fault-injection run (`make faults` runs it)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "faults" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="the large fault run: `make faults`")
    for item in items:
        if item.get_closest_marker("faults") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.faults.harness import SUMMARIES

    if SUMMARIES:
        terminalreporter.section("fault injection")
        for line in SUMMARIES:
            terminalreporter.write_line(line)

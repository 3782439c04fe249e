"""The fault-injection run (tests/faults/harness.py; tests/faults/README.md says what it proves).

`make test` runs the small seeded run: a few lifecycles with the worker SIGKILLed twice and
PostgreSQL stopped for a few seconds, then the idempotency storm (100 identical POSTs, one key).
`make faults` runs the large one (marker `faults`): more lifecycles, more kills, the Temporal
dev server stopped and started, PostgreSQL stopped for 30 s, the SMTP server down; the numbers
come from ACCORD_FAULTS_* variables (see the Makefile). Both print their counts (`-s` shows them).
"""

from __future__ import annotations

import os

import pytest

from tests.faults.harness import Plan, fault_run, plan_from_env

SMALL = Plan(lifecycles=4, seed=1, kills=2, pg_outage=8, temporal_restart=False, smtp_outage=0, storm=100, stagger=0.3)
LARGE = Plan(lifecycles=24, seed=2026, kills=6, pg_outage=30, temporal_restart=True, smtp_outage=20, storm=100,
             stagger=0.5)


async def test_small_fault_run_loses_nothing_and_repeats_nothing() -> None:
    counts = await fault_run(plan_from_env(SMALL) if os.environ.get("ACCORD_FAULTS_SMALL_FROM_ENV") else SMALL)
    assert counts["worker SIGKILLs"] >= 1, "the worker was never killed: the lifecycles ended first"
    assert any(f.startswith("postgresql at") for f in counts["faults"]), "PostgreSQL was never stopped"


@pytest.mark.faults
async def test_large_fault_run_loses_nothing_and_repeats_nothing() -> None:
    counts = await fault_run(plan_from_env(LARGE))
    applied = [f for f in counts["faults"] if "(not reached)" not in f]
    assert {f.split()[0] for f in applied} >= {"kill", "postgresql", "temporal", "smtp"}, counts["faults"]

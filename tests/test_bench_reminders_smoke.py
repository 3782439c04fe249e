"""Keeps the reminders half of `make bench` working: the whole bench, in-process, on a tiny shape.

Checks what the bench computes, never how fast: every milestone's notice is delivered once, on
one row, with its inbox message and audit event, by the burst and not before it; the lateness
figures are numbers that cannot be negative; the JSON is written. The bench starts its own
PostgreSQL and Temporal dev server, so the session fixtures are not used.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

from bench.reminders import Options, run

COOPERATIONS, PROJECTS, MILESTONES = 2, 3, 2
NOTICES = COOPERATIONS * PROJECTS * MILESTONES


def test_bench_reminders_runs_on_a_tiny_shape(tmp_path):
    options = Options(cooperations=COOPERATIONS, projects=PROJECTS, milestones=MILESTONES, timeout=60,
                      results=tmp_path, quiet=True)
    # In a thread of its own: the bench runs its own event loop (asyncio.run), which must not
    # touch the loop pytest-asyncio keeps for the rest of the session.
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(run, options).result()

    burst = results["burst"]
    assert not burst["timed_out"], burst
    assert burst["signalled"] == COOPERATIONS * PROJECTS
    assert burst["delivered_once"], burst
    assert burst["notices"] == burst["notices_sent"] == burst["rows"] == burst["sent"] == NOTICES
    assert burst["duplicates"] == 0
    assert burst["failed"] == burst["pending"] == 0
    assert burst["early"] == 0 and burst["sent_in_burst"] == NOTICES, "a notice went out before the burst"
    assert burst["kinds"] == ["due"]
    assert burst["inbox_messages"] == burst["audit_events"] == NOTICES

    for key in ("lateness_s", "dispatch_after_t0_s", "delivery_after_dispatch_s"):
        figures = burst[key]
        assert set(figures) == {"min", "p50", "p95", "p99", "max"}, key
        assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in figures.values()), (key, figures)
        assert figures["min"] <= figures["p50"] <= figures["p95"] <= figures["p99"] <= figures["max"], (key, figures)
    assert burst["throughput_per_s"] > 0

    written = json.loads((tmp_path / results["json"].rsplit("/", 1)[1]).read_text(encoding="utf-8"))
    assert written["shape"]["milestones"] == NOTICES
    assert written["burst"]["lateness_s"]["p99"] == burst["lateness_s"]["p99"]

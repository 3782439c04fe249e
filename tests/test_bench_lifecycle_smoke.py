"""Keeps the lifecycle half of `make bench` working: the whole bench, in-process, at tiny counts.

Checks what the bench computes, never how fast: every lifecycle finished (every cooperation and
project completed in the read model, 28 actions each answered), the floor and the throughput
levels have their figures, the reads found rows in the right order at each size, the processes'
peak memory was read, the JSON was written. The bench starts its own PostgreSQL, Temporal dev
server, `accord worker` and `accord api`, so the session fixtures are not used.
"""

from __future__ import annotations

import json
import math
from concurrent.futures import ThreadPoolExecutor

from bench import actions, floor, reads
from bench.lifecycle import Options, run

CONCURRENCY, LIFECYCLES = [1, 2], [1, 2]
SIZES = [200, 600]


def finite(value: object) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value >= 0


def test_bench_lifecycle_runs_at_tiny_counts(tmp_path):
    options = Options(concurrency=CONCURRENCY, lifecycles=LIFECYCLES, floor_samples=5, read_sizes=SIZES,
                      read_samples=2, results=tmp_path, quiet=True)
    # In a thread of its own: the bench runs its own event loop (asyncio.run), which must not
    # touch the loop pytest-asyncio keeps for the rest of the session.
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(run, options).result()

    total = sum(LIFECYCLES)
    done = results["finished"]
    assert done["all_completed"], done
    assert done["cooperations"] == total and done["stages"] == {"completed": total}
    assert done["projects"] == {"completed": actions.PROJECTS * total}

    for kind in floor.KINDS + ("insert_commit",):
        figures = results["floor"][kind]
        assert figures["samples"] == 5, kind
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"], (kind, figures)

    assert [p["concurrency"] for p in results["throughput"]] == CONCURRENCY
    for phase, asked in zip(results["throughput"], LIFECYCLES, strict=True):
        assert phase["failed"] == 0, phase["failures"]
        assert phase["completed"] == phase["lifecycles"] == asked
        assert phase["actions"] == asked * actions.ACTIONS_PER_LIFECYCLE
        assert phase["bare_updates"]["updates"] == phase["actions"]
        assert finite(phase["actions_vs_bare_updates"]) and phase["actions_vs_bare_updates"] > 0
        kinds = phase["latency"]["by_kind"]
        assert kinds["complete_milestone"]["samples"] == asked * actions.PROJECTS * actions.MILESTONES
        assert kinds["create_cooperation"]["samples"] == asked
    assert results["latency"]["all"]["samples"] == LIFECYCLES[0] * actions.ACTIONS_PER_LIFECYCLE
    assert finite(results["ratios"]["action_p50_over_floor"])

    assert [step["size"] for step in results["reads"]] == SIZES
    assert [step["cooperations_total"] - step["size"] for step in results["reads"]] == [total, total]
    for step in results["reads"]:
        for kind in reads.READ_KINDS:
            figures = step["reads"][kind]
            assert figures["samples"] == 2, (step["size"], kind)
            assert figures["ordered"], (step["size"], kind)
        # Rows exist for what is asked: pages of the reader's department, its partners and officers.
        for kind in ("list_stage", "list_partner", "list_officer", "page"):
            assert step["reads"][kind]["mean_rows"] > 0, (step["size"], kind)

    for name in ("worker", "api", "floor-worker"):
        assert results["memory"][name]["peak_rss_mb"] > 10, name

    written = json.loads((tmp_path / results["json"].rsplit("/", 1)[1]).read_text(encoding="utf-8"))
    assert written["finished"]["all_completed"]
    assert written["environment"]["cpus"] and len(written["environment"]["load_average_at_start"]) == 3

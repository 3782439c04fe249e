"""Keeps `make bench` working: the whole benchmark, in-process, on a tiny dataset.

Checks what the bench computes, never how fast: verify must accept the generated chain,
every search kind must find rows, the export must hold every event plus the header.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from bench.audit import Options, run
from bench.dataset import Shape

EVENTS = 2_000


def test_bench_runs_on_a_tiny_dataset(tmp_path):
    options = Options(shape=Shape(events=EVENTS, cooperations=40, actors=5), samples=5,
                      export_rows=(EVENTS,), results=tmp_path, quiet=True)
    # In a thread of its own: the bench runs its own event loops (asyncio.run), which must not
    # touch the loop pytest-asyncio keeps for the rest of the session.
    with ThreadPoolExecutor(1) as pool:
        results = pool.submit(run, options).result()

    verdict = results["verify"]
    assert verdict["intact"], verdict
    assert verdict["events"] == EVENTS
    assert verdict["checkpoints"] == 1

    for key, search in results["searches"].items():
        assert search["samples"] >= 3, key
        assert search["mean_rows"] > 0, f"{key} found nothing: {search['slowest_filter']}"

    (export,) = results["exports"]
    assert export["rows"] == EVENTS
    assert export["lines"] == EVENTS + 1  # the header, then one line per event

    written = json.loads((tmp_path / results["json"].rsplit("/", 1)[1]).read_text(encoding="utf-8"))
    assert written["dataset"]["events"] == EVENTS

"""Probes and metrics of the API process: GET /readyz and GET /metrics (GET /healthz is in api/app.py).

/readyz answers 200 when this replica can serve: PostgreSQL answers, no migration is pending
(a schema ahead of the code is fine: migrations run first during an upgrade), and the
Temporal frontend answers. Otherwise 503, naming the check that failed. Each check has its
own short timeout, so a probe never hangs on a dead dependency.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from db.migrate import pending
from observability.metrics import CONTENT_TYPE_LATEST, exposition

router = APIRouter(tags=["operations"])
CHECK_SECONDS = 3.0
_SKIPPED = "not checked: "


class Readiness(BaseModel):
    status: str  # "ready" or "unready"
    checks: dict[str, str]  # check name -> "ok", what is wrong, or "not checked: ..." (it depends on another)
    failed: list[str]  # the names of the checks that failed
    detail: str | None = None  # the failed checks in one sentence


async def _postgresql(services: Any) -> tuple[str, str]:
    """(database check, migrations check)."""
    try:
        async with asyncio.timeout(CHECK_SECONDS):
            async with services.pool.acquire() as conn:
                await conn.fetchval("SELECT 1")
                missing = await pending(conn)
    except TimeoutError:
        return f"no answer within {CHECK_SECONDS:g}s", _SKIPPED + "PostgreSQL is unreachable"
    except Exception as error:  # noqa: BLE001 - any failure makes the replica unready
        return f"unreachable: {type(error).__name__}: {error}"[:300], _SKIPPED + "PostgreSQL is unreachable"
    return "ok", "ok" if not missing else "pending: " + ", ".join(missing)


async def _temporal(services: Any) -> str:
    try:
        await services.client.workflow_service.get_system_info(
            GetSystemInfoRequest(), timeout=timedelta(seconds=CHECK_SECONDS))
    except Exception as error:  # noqa: BLE001
        return f"unreachable: {type(error).__name__}: {error}"[:300]
    return "ok"


async def readiness(services: Any) -> Readiness:
    (database, migrations), temporal = await asyncio.gather(_postgresql(services), _temporal(services))
    checks = {"postgresql": database, "migrations": migrations, "temporal": temporal}
    failed = [name for name, result in checks.items() if result != "ok" and not result.startswith(_SKIPPED)]
    detail = "; ".join(f"{name} {checks[name]}" for name in failed) or None
    return Readiness(status="unready" if failed else "ready", checks=checks, failed=failed, detail=detail)


@router.get("/readyz", response_model=Readiness, responses={503: {"model": Readiness, "description": "Not ready"}})
async def readyz(request: Request) -> JSONResponse:
    """This replica can serve: PostgreSQL and Temporal answer and the schema is current (503 names what is not)."""
    result = await readiness(request.app.state.services)
    return JSONResponse(result.model_dump(), status_code=503 if result.failed else 200,
                        headers={"Cache-Control": "no-store"})


@router.get("/metrics", include_in_schema=False)
async def metrics() -> Response:
    """Prometheus text format (observability/metrics.py)."""
    return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

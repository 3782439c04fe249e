"""The signed-in user's dashboard (placeholder until the dashboard lands)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from web.pages import render
from web.session import viewer

router = APIRouter()


@router.get("/")
async def dashboard(request: Request) -> Response:
    who = await viewer(request)
    return await render(request, who, "dashboard.html")

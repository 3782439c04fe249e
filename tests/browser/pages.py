"""Every page of the site, for the accessibility sweep and the screenshots (test_browser_pages.py).

Each page is visited in both languages by a user signed in with `roles` in `department`,
checked with axe-core and saved as test-artifacts/screenshots/<language>/<name>.png.
Add a page here once it answers (a page not built yet answers 404 and does not belong here).

A page that shows one record gives `path` as an async function of the `api` fixture
(tests/conftest.py: a liaison officer of API_DEPARTMENT; tests/test_api_support.py builds
cooperations with it) that makes the record and answers the page's path, e.g.
`Visit("cooperation", cooperation_path)` with `async def cooperation_path(api) -> str`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from tests.conftest import API_DEPARTMENT, ApiUser


@dataclass(frozen=True)
class Visit:
    name: str  # the screenshot's file name, and the test id
    path: str | Callable[[ApiUser], Awaitable[str]]
    roles: tuple[str, ...] = ("liaison_officer",)
    department: str | None = API_DEPARTMENT

    async def resolve(self, api: ApiUser) -> str:
        return self.path if isinstance(self.path, str) else await self.path(api)


PAGES: list[Visit] = [
    Visit("dashboard", "/"),
    Visit("login", "/login"),
]

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
from tests.test_api_support import Coop, framework_body, in_delivery, open_cooperation


@dataclass(frozen=True)
class Visit:
    name: str  # the screenshot's file name, and the test id
    path: str | Callable[[ApiUser], Awaitable[str]]
    roles: tuple[str, ...] = ("liaison_officer",)
    department: str | None = API_DEPARTMENT

    async def resolve(self, api: ApiUser) -> str:
        return self.path if isinstance(self.path, str) else await self.path(api)


# ---------------------------------------------------------------- records to show

_DELIVERING: list[Coop] = []


async def _delivering(api: ApiUser) -> Coop:
    """One cooperation in delivery with a project, made once a session: the pages of a record show
    the same record in both languages (comparable screenshots), and building it takes seconds."""
    if not _DELIVERING:
        _DELIVERING.append(await in_delivery(api.http, projects=1))
    return _DELIVERING[0]


async def cooperation_path(api: ApiUser) -> str:
    return (await _delivering(api)).path


async def terminate_path(api: ApiUser) -> str:
    return (await _delivering(api)).path + "/terminate"  # lists the open project it would cancel


async def project_path(api: ApiUser) -> str:
    return f"/projects/{(await _delivering(api)).project_ids[0]}"


async def agreement_edit_path(api: ApiUser) -> str:
    coop = await open_cooperation(api.http)
    agreement_id = await coop.draft(framework_body(coop.w))
    return f"{coop.path}/agreements/{agreement_id}/edit"


async def user_path(api: ApiUser) -> str:
    return f"/admin/users/{api.user_id}"


async def policy_path(api: ApiUser) -> str:
    return f"/admin/policies/{(await _delivering(api)).w.company_id}"  # its projects follow this policy


_DOCUMENTS: list[str] = []


async def _draft_document(api: ApiUser) -> str:
    """A cooperation's agreement draft in two versions (made once): its documents path."""
    if not _DOCUMENTS:
        from tests.document_files import docx

        coop = await open_cooperation(api.http)
        agreement_id = await coop.draft(framework_body(coop.w))
        for text in ("第二条 投资额 10亿元", "第二条 投资额 12亿元"):
            answer = await api.http.post(f"{coop.path}/documents", data={"kind": "draft", "agreement_id": agreement_id},
                                         files={"file": ("框架协议草稿.docx", docx(["第一条 合作内容", text]))})
            assert answer.status_code == 201, answer.text
        _DOCUMENTS.append(f"{coop.path}/documents/{answer.json()['document']['id']}")
    return _DOCUMENTS[0]


async def document_compare_path(api: ApiUser) -> str:
    return f"{await _draft_document(api)}/compare?from=1&to=2"


async def document_verify_path(api: ApiUser) -> str:
    return f"{await _draft_document(api)}/versions/2/verify"


ADMIN = ("admin",)

PAGES: list[Visit] = [
    Visit("dashboard", "/"),
    Visit("login", "/login"),
    Visit("cooperations", "/cooperations"),
    Visit("cooperation-new", "/cooperations/new"),
    Visit("cooperation", cooperation_path),
    Visit("cooperation-terminate", terminate_path),
    Visit("agreement-edit", agreement_edit_path),
    Visit("document-compare", document_compare_path),
    Visit("document-verify", document_verify_path),
    Visit("project", project_path),
    Visit("inbox", "/inbox"),
    Visit("audit", "/audit", ("auditor",)),
    Visit("reports", "/reports", ("leader",)),
    Visit("imports", "/imports"),
    Visit("admin-users", "/admin/users", ADMIN),
    Visit("admin-user-new", "/admin/users/new", ADMIN),
    Visit("admin-user", user_path, ADMIN),
    Visit("admin-departments", "/admin/departments", ADMIN),
    Visit("admin-policies", "/admin/policies", ADMIN),
    Visit("admin-policy", policy_path, ADMIN),
]

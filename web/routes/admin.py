"""Administration pages: users and their roles, the department tree, organizations' reminder policies.

Each area has its module (admin_users.py, admin_departments.py, admin_policies.py; what they
share is web/admin_forms.py). Every change runs the API's own handler (api/routes/admin.py,
api/routes/reminders.py) as a Python function, so the checks (admins only; no admin can drop
their own admin role or disable themselves; no department loop) and the audit events are
exactly the API's. Users and departments are the admins' alone; leaders read the reminder
policies (the API lets everyone read them) but only admins change them.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from web.admin_forms import ADMINS_ONLY, forbidden
from web.forms import redirect
from web.session import viewer

router = APIRouter()


@router.get("/admin")
async def admin_home(request: Request) -> Response:
    """The first administration page this user may use."""
    who = await viewer(request)
    if who.may("admin"):
        return redirect("/admin/users")
    if who.may("leader"):
        return redirect("/admin/policies")
    return await forbidden(request, who, who._(ADMINS_ONLY))

"""`accord demo`: the real case from shared/seed, driven through the public API.

Mianyang Municipal Government courts Boao Zhongheng Network Technology Co., Ltd.
(Guangzhou): a forum at the Fifth Sci-Tech Expo, an inspection visit in Guangzhou on
1 December 2017 led by mayor Liu Chao, the strategic cooperation framework agreement
signed by vice mayor Sun Fuquan and CPO Chen Dong, and the project investment
agreement signed by the high-tech park management committee, for a southwestern
regional headquarters and the Research Institute of Intellectual Property of
Sci-Tech City (Mianyang).

The source gives no amounts, no forum date and no names for the investment
agreement's signatories: those values below are marked as illustrative.

Every request carries a fixed Idempotency-Key, so a second run changes nothing and
prints the same result.

The demo acts as the people who would: a liaison officer of the investment promotion
bureau drafts and signs, a reviewer of the legal affairs office and a leader of the city
government decide the review steps (never the drafter), a park committee officer owns the
projects. `accord demo` creates them in the database, as `accord user create` would, with
fresh API tokens for this run; the admin creates nothing of the business.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import httpx

from db.audit_chain import AuditEvent, append
from db.pool import connect as connect_db
from db.users import create_user, ensure_department, find_user, issue_token
from documents.samples import docx, pdf

KEY = "demo-seed-v1"
SIGNED_ON = "2017-12-01"
ILLUSTRATIVE = "illustrative value: not given in the source"


class DemoError(SystemExit):
    pass


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/") + "/api/v1", timeout=60,
                                  headers={"Authorization": f"Bearer {token}"})

    def post(self, step: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self._http.post(path, json=body, headers={"Idempotency-Key": f"{KEY}:{step}"})
        if response.status_code >= 400:
            raise DemoError(f"{step}: {response.status_code} {response.text}")
        return response.json()

    def organization(self, step: str, body: dict[str, Any]) -> dict[str, Any]:
        """Register an organization, or find it when it is registered already (by an earlier demo)."""
        response = self._http.post("/organizations", json=body, headers={"Idempotency-Key": f"{KEY}:{step}"})
        if response.status_code == 409:
            found = [o for o in self.get("/organizations", q=body["name"]) if o["name"] == body["name"]]
            if found:
                return found[0]
        if response.status_code >= 400:
            raise DemoError(f"{step}: {response.status_code} {response.text}")
        return response.json()

    def upload(self, cid: str, fields: dict[str, str], file_name: str, content: bytes) -> None:
        """Upload a document unless the agreement already has one of this kind (an earlier demo)."""
        have = {(d["agreement_id"], d["kind"]) for d in self.get(f"/cooperations/{cid}/documents")}
        if (fields.get("agreement_id"), fields["kind"]) in have:
            return
        response = self._http.post(f"/cooperations/{cid}/documents", data=fields, files={"file": (file_name, content)})
        if response.status_code >= 400:
            raise DemoError(f"upload {file_name}: {response.status_code} {response.text}")

    def get(self, path: str, **params: Any) -> Any:
        response = self._http.get(path, params=params)
        if response.status_code >= 400:
            raise DemoError(f"GET {path}: {response.status_code} {response.text}")
        return response.json()


CITY = "绵阳市人民政府 Mianyang Municipal Government (demo)"
BUREAU = "Mianyang Investment Promotion Bureau (demo) 绵阳市投资促进局"
PARK = "Management Committee of Mianyang High-tech Zone"
LEGAL = "Legal Affairs Office (demo) 绵阳市法制办"
OFFICER_NAME = "Investment promotion liaison (demo) 招商联络员"
PROJECT_OFFICER_NAME = "Project officer (demo)"

# username, display name, roles, department: the bureau and the park committee sit under the city.
PEOPLE = (
    ("demo-officer", OFFICER_NAME, ["liaison_officer"], BUREAU),
    ("demo-counsel", "Legal counsel (demo) 法制办审查员", ["reviewer"], LEGAL),
    ("demo-director", "Secretary-General's office (demo) 市政府领导", ["leader"], CITY),
    ("demo-park-officer", PROJECT_OFFICER_NAME, ["liaison_officer"], PARK),
)


@dataclass
class Cast:
    officer: Api
    counsel: Api
    director: Api


def run_demo(base_url: str, database_url: str) -> None:
    tokens = asyncio.run(demo_people(database_url))
    cast = Cast(*(Api(base_url, tokens[username]) for username in ("demo-officer", "demo-counsel", "demo-director")))
    try:
        cast.officer.get("/me")
    except httpx.ConnectError:
        raise DemoError(f"cannot reach {base_url}: start the system with `make run` first") from None
    cooperation_id = drive(cast)
    print_state(cast.officer, cooperation_id)


async def demo_people(database_url: str) -> dict[str, str]:
    """The demo's departments and people, created once; each run gets fresh tokens (the old
    ones are revoked: only their hashes exist)."""
    conn = await connect_db(database_url)
    tokens = {}
    try:
        async with conn.transaction():
            for username, user_id in (await ensure_people(conn)).items():
                await conn.execute("UPDATE api_tokens SET revoked_at = now() WHERE user_id = $1 "
                                   "AND name = 'accord demo' AND revoked_at IS NULL", user_id)
                tokens[username] = await issue_token(conn, user_id, "accord demo")
    finally:
        await conn.close()
    return tokens


async def ensure_people(conn: asyncpg.Connection) -> dict[str, str]:
    """Create the demo's departments and people if missing: username → user id."""
    await ensure_department(conn, CITY, "accord demo")
    for child in (BUREAU, PARK, LEGAL):
        await ensure_department(conn, child, "accord demo")
        await conn.execute("UPDATE departments SET parent = $2 WHERE name = $1 AND parent IS NULL", child, CITY)
    ids = {}
    for username, name, roles, department in PEOPLE:
        user = await find_user(conn, username)
        if user is None:
            user = await create_user(conn, username, name, roles, department, granted_by="accord demo")
            await conn.execute("UPDATE users SET email = $2 WHERE id = $1", user.id, f"{username}@mianyang.example")
            await append(conn, AuditEvent(
                actor_id="system", actor_name="accord demo", actor_role="system", auth_method="cli",
                action="user.created", entity_type="user", entity_id=user.id,
                after={"username": username, "roles": roles, "department": department}))
        ids[username] = user.id
    return ids


async def ensure_sign_in(conn: asyncpg.Connection, usernames: list[str]) -> list[tuple[str, str]]:
    """Give each of these users without a password a fresh random one, for the web pages of
    `make run`: (username, password) of those set now. Set once; never reset here."""
    from db.passwords import set_password

    created = []
    for username in usernames:
        row = await conn.fetchrow("SELECT id, password_hash FROM users WHERE username = $1", username)
        if row is None or row["password_hash"] is not None:
            continue
        password = "-".join(secrets.token_urlsafe(6) for _ in range(3))
        await set_password(conn, row["id"], password)
        await append(conn, AuditEvent(
            actor_id="system", actor_name="accord dev", actor_role="system", auth_method="cli",
            action="auth.password_set", entity_type="user", entity_id=row["id"],
            after={"username": username, "reason": "first start of accord dev"}))
        created.append((username, password))
    return created


def drive(cast: Cast) -> str:
    api = cast.officer
    city = api.organization("org-city", {
        "name": "绵阳市人民政府 Mianyang Municipal Government", "kind": "government", "region": "Mianyang, Sichuan"})
    park = api.organization("org-park", {
        "name": "绵阳高新区管委会 Management Committee of Mianyang High-tech Zone", "kind": "park_committee",
        "region": "Mianyang, Sichuan"})
    company = api.organization("org-company", {
        "name": "博奥中恒网络科技有限公司 Boao Zhongheng Network Technology Co., Ltd.", "kind": "company",
        "region": "Guangzhou, Guangdong"})
    for step, org, name, title in [
        ("p-liu", city, "Liu Chao", "Deputy Secretary of the Municipal Party Committee, Mayor"),
        ("p-sun", city, "Sun Fuquan", "Vice Mayor"),
        ("p-han", city, "Han Shengjian", "Vice Mayor"),
        ("p-tan", city, "Tan Gang", "Secretary-General of the Municipal Government"),
        ("p-xie", company, "Xie Xuhui", "Chairman"),
        ("p-chen", company, "Chen Dong", "CPO"),
    ]:
        api.post(step, f"/organizations/{org['id']}/people", {"name": name, "title": title})

    coop = api.post("cooperation", "/cooperations", {
        "title": "与博奥中恒战略合作 Strategic cooperation with Boao Zhongheng",
        "lead_organization_id": city["id"],
        "partner_organization_id": company["id"],
        "areas": ["Sci-Tech Expo 科博会", "Intellectual-property services 知识产权服务",
                  "Technology platform 科技平台", "High-end talent 高端人才"],
        "liaison_officer": OFFICER_NAME,
        "department": BUREAU,
        "started_on": "2017-09-01",
        "target_signing_date": SIGNED_ON,
        "description": "From negotiation to signing within three months (Xie Xuhui). Hoped for later: a Big Data "
                       "Center, and the headquarters and settlement center of Intellectual Property and Business "
                       "Finance.",
    })
    cid = coop["cooperation_id"]
    api.post("forum", f"/cooperations/{cid}/negotiation-events", {
        "kind": "forum", "occurred_on": "2017-09-08", "place": "Mianyang, Fifth Sci-Tech Expo",
        "participants": ["Boao Zhongheng Network Technology Co., Ltd."],
        "summary": "Military-Civilian Integration Intellectual Property and Finance Summit Forum of China 2017, hosted "
                   "by Boao Zhongheng: the first professional forum of any Sci-Tech Expo held by a private "
                   f"enterprise through market-oriented means. (Exact day: {ILLUSTRATIVE}.)",
    })
    api.post("inspection", f"/cooperations/{cid}/negotiation-events", {
        "kind": "inspection_visit", "occurred_on": SIGNED_ON, "place": "Guangzhou, Boao Zhongheng",
        "participants": ["Liu Chao", "Han Shengjian", "Tan Gang", "Xie Xuhui"],
        "summary": "Mayor Liu Chao led the team: history, operation pattern and strategy of the company; demonstration "
                   "of the IP resource-sharing enterprise service platform; discussion with chairman Xie Xuhui. "
                   "Mianyang hopes for the Big Data Center and the IP and business finance headquarters and "
                   "settlement center.",
    })

    framework = sign_through(cast, cid, "framework", {
        "kind": "framework",
        "title": "战略合作框架协议 Strategic Cooperation Framework Agreement",
        "parties": [
            {"organization_id": city["id"], "signatory_name": "Sun Fuquan", "signatory_title": "Vice Mayor"},
            {"organization_id": company["id"], "signatory_name": "Chen Dong", "signatory_title": "CPO"},
        ],
    })
    investment = sign_through(cast, cid, "investment", {
        "kind": "investment",
        "title": "项目投资协议 Project Investment Agreement",
        "parties": [
            {"organization_id": park["id"], "signatory_name": f"Authorized representative ({ILLUSTRATIVE})",
             "signatory_title": "Management Committee of Mianyang High-tech Zone"},
            {"organization_id": company["id"], "signatory_name": f"Authorized representative ({ILLUSTRATIVE})",
             "signatory_title": "Boao Zhongheng Network Technology Co., Ltd."},
        ],
    })
    del framework
    state = api.post("project-hq", f"/cooperations/{cid}/projects", {
        "agreement_id": investment, "title": "博奥中恒西南区域总部 Boao Zhongheng Southwestern Regional Headquarters",
        "site": "Mianyang High-tech Zone 绵阳高新区", "committed_investment": "50000000.00",
        "responsible_department": PARK,
        "responsible_officer": PROJECT_OFFICER_NAME,
    })
    api.post("project-institute", f"/cooperations/{cid}/projects", {
        "agreement_id": investment,
        "title": "中国科技城（绵阳）知识产权研究院 Research Institute of Intellectual Property of Sci-Tech City (Mianyang)",
        "site": "Mianyang High-tech Zone 绵阳高新区", "committed_investment": "20000000.00",
        "responsible_department": PARK,
        "responsible_officer": PROJECT_OFFICER_NAME,
    })
    headquarters = state["projects"][0]["project_id"]
    api.post("hq-registration", f"/projects/{headquarters}/milestones/company_registration/complete", {
        "completed_on": "2017-12-28", "evidence": f"Business licence of the regional company ({ILLUSTRATIVE})"})
    api.post("hq-tranche-1", f"/projects/{headquarters}/investments", {
        "received_on": "2018-01-15", "amount": "5000000.00", "source_note": f"First tranche ({ILLUSTRATIVE})"})
    return cid


AGREEMENT_CLAUSES = {  # the articles as the news report sums them up; the wording is illustrative
    "framework": ["第一条 双方在科博会、知识产权服务、科技平台和高端人才等领域开展合作。",
                  "第二条 博奥中恒在绵阳设立西南区域总部和中国科技城（绵阳）知识产权研究院。",
                  "第三条 双方积极推动大数据中心及知识产权和商业金融总部、结算中心落户绵阳。"],
    "investment": ["第一条 项目选址绵阳高新区。", "第二条 设立博奥中恒西南区域总部。",
                   "第三条 设立中国科技城（绵阳）知识产权研究院。"],
}


def sign_through(cast: Cast, cid: str, name: str, draft: dict[str, Any]) -> str:
    """Draft, submit, pass both review steps (legal counsel, then the city leadership) and collect
    every party's signature."""
    api = cast.officer
    state = api.post(f"{name}-draft", f"/cooperations/{cid}/agreements", draft)
    agreement = next(a for a in state["agreements"] if a["kind"] == draft["kind"])
    aid = agreement["agreement_id"]
    # The agreement's text as a draft (the review steps record this version), then the scan of
    # the signed original, which the last signature seals into the record.
    title = draft["title"].split(" ")[0]
    api.upload(cid, {"kind": "draft", "agreement_id": aid, "note": "Text agreed in negotiation (demo)"},
               f"{title}（草稿）.docx", docx([draft["title"], *AGREEMENT_CLAUSES[draft["kind"]]]))
    api.post(f"{name}-submit", f"/cooperations/{cid}/agreements/{aid}/submit")
    for step, decider in (("legal_review", cast.counsel), ("leadership_approval", cast.director)):
        decider.post(f"{name}-{step}", f"/cooperations/{cid}/agreements/{aid}/review-steps/{step}/approve",
                     {"comment": "Approved (demo)"})
    api.upload(cid, {"kind": "signed_original", "agreement_id": aid, "note": f"Scan of the signed original ({ILLUSTRATIVE})"},
               f"{title}（签字版）.pdf", pdf([f"{draft['kind'].title()} agreement, signed {SIGNED_ON} (demo scan)"]))
    for party in draft["parties"]:
        api.post(f"{name}-sign-{party['organization_id']}", f"/cooperations/{cid}/agreements/{aid}/signatures",
                 {"organization_id": party["organization_id"], "signed_on": SIGNED_ON})
    return aid


def print_state(api: Api, cid: str) -> None:
    coop = api.get(f"/cooperations/{cid}")
    print(f"\n{coop['title']}")
    print(f"  stage: {coop['stage']}   lead: {coop['lead_organization_name']}   partner: "
          f"{coop['partner_organization_name']}")
    print(f"  areas: {', '.join(coop['areas'])}")
    print("\nNegotiation record")
    for event in coop["negotiation"]:
        print(f"  {event['occurred_on']}  {event['kind']:<16} {event['place']}")
    print("\nAgreements")
    for agreement in coop["agreements"]:
        print(f"  {agreement['title']}: {agreement['status']} on {agreement['signed_on']}")
        for signature in agreement["signatures"]:
            print(f"      signed by {signature['signatory_name']}, {signature['signatory_title']}")
        if agreement.get("signed_document"):
            sealed = agreement["signed_document"]
            print(f"      signed original sealed: {sealed['file_name']} v{sealed['version']} sha256 {sealed['sha256'][:16]}…")
    print("\nProjects")
    for project in coop["projects"]:
        committed, realized = Decimal(project["committed_investment"]), Decimal(project["realized_investment"])
        print(f"  {project['title']}  [{project['status']}]")
        print(f"      committed CNY {committed:,.2f}, realized CNY {realized:,.2f} "
              f"({realized / committed:.0%}) ({ILLUSTRATIVE})")
        for m in project["milestones"]:
            late = f"  OVERDUE {m['overdue_days']} days" if m["overdue_days"] else ""
            print(f"      {m['status']:<5} due {m['due_date']}  {m['name']}{late}")
    audit = api.get(f"/cooperations/{cid}/audit")
    print(f"\nAudit trail: {len(audit)} events; the last: {audit[-1]['action']} by {audit[-1]['actor_name']}")
    print(f"Cooperation id: {cid}")

"""Reads at scale: the cooperation list (filtered, paged) and a cooperation page through the API.

The read model is loaded directly with binary COPY (as bench/load.py loads the audit trail),
not through workflows: 100,000 cooperations through the lifecycle would take hours here, and
the reads only see rows. The shapes are those the workflows write (db/readmodel.py): stages in
realistic shares, one to four negotiation events, the framework and investment agreements with
their review steps and signatures as the stage implies, one to three projects of six milestones
for cooperations in delivery or completed, some milestones overdue. Seeded: the same rows on
every run apart from ids made unique per load step.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any

import asyncpg
import httpx

from bench.load import _binary_jsonb
from domain.audit import OFFICE_TZ

DEPARTMENTS = [f"Department {n:02d} 部门" for n in range(11)]
"""Other departments; the reader's own (bench.actions.DEPARTMENT) gets about one cooperation in twelve."""
STAGES = [("negotiating", 35), ("framework_signed", 15), ("in_delivery", 35), ("completed", 10), ("terminated", 5)]
INDUSTRIES = ["新能源 new energy", "大数据 big data", "知识产权 intellectual property", "电子信息 electronics",
              "生物医药 biomedicine", "先进制造 manufacturing", "现代物流 logistics", "文化旅游 tourism"]
CITIES = ["绵阳 Mianyang", "成都 Chengdu", "广州 Guangzhou", "深圳 Shenzhen", "重庆 Chongqing", "西安 Xi'an"]
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
COMPANIES = 5_000
GOVERNMENTS = 40
OFFICERS = 300
READ_KINDS = ("list_stage", "list_stage_page3", "list_partner", "list_officer", "list_q", "list_overdue", "page")


def officer_name(n: int) -> str:
    return f"{SURNAMES[n % len(SURNAMES)]}{SURNAMES[(n // 7) % len(SURNAMES)]} Officer {n:03d}"


@dataclass
class Generated:
    cooperations: list[tuple]
    negotiation: list[tuple]
    agreements: list[tuple]
    signatures: list[tuple]
    projects: list[tuple]
    milestones: list[tuple]


def _weighted(rng: random.Random, pairs: list[tuple[str, int]]) -> str:
    return rng.choices([p for p, _ in pairs], weights=[w for _, w in pairs])[0]


def generate(first: int, count: int, own_department: str, seed: int = 7) -> Generated:
    """Cooperations number `first` .. `first + count - 1` and everything under them."""
    rng = random.Random(seed * 1_000_003 + first)
    now = datetime.now(timezone.utc)
    today = now.astimezone(OFFICE_TZ).date()
    departments = [own_department, *DEPARTMENTS]
    out = Generated([], [], [], [], [], [])
    for n in range(first, first + count):
        cid = f"rc{n:07d}{rng.getrandbits(40):010x}"
        created = now - timedelta(days=5 * 365) * (1 - n / 200_000) - timedelta(seconds=rng.random())
        stage = _weighted(rng, STAGES)
        department = departments[rng.randrange(len(departments))]
        # A few partners hold many cooperations (Zipf-like), most hold one or two.
        partner = int(COMPANIES * rng.random() ** 2)
        lead = rng.randrange(GOVERNMENTS)
        officer = officer_name(rng.randrange(OFFICERS))
        industry, city = rng.choice(INDUSTRIES), rng.choice(CITIES)
        title = f"{city.split()[0]}{industry.split()[0]}合作 Cooperation {n} on {industry.split()[1]} in {city.split()[1]}"
        partner_name, lead_name = company_name(partner), government_name(lead)
        areas = rng.sample(INDUSTRIES, rng.randint(1, 3))
        search = " ".join([title, partner_name, lead_name, officer, department, *areas]).lower()
        version = 3
        started = (created.astimezone(OFFICE_TZ) - timedelta(days=rng.randint(0, 60))).date()
        for e in range(rng.randint(1, 4)):
            out.negotiation.append((cid, f"neg-{e}", rng.choice(["meeting", "inspection_visit", "forum", "draft_version", "note"]),
                                    started + timedelta(days=10 * e), None, city, ["Mayor Chen", "Chairman Xie"],
                                    f"Round {e + 1} on land and tax terms 第{e + 1}轮洽谈", "bench"))
            version += 1
        kinds = []
        if stage != "negotiating" or rng.random() < 0.5:
            kinds.append("framework")
        if stage in ("in_delivery", "completed"):
            kinds.append("investment")
        for kind in kinds:
            signed = stage != "negotiating" and (kind == "investment" or stage != "terminated" or rng.random() < 0.5)
            aid = f"{kind[:2]}-{cid}"
            on = started + timedelta(days=90 if kind == "framework" else 200)
            parties = [{"organization_id": government_id(lead), "organization_name": lead_name,
                        "signatory_name": "Sun Fuquan", "signatory_title": "Vice Mayor"},
                       {"organization_id": company_id(partner), "organization_name": partner_name,
                        "signatory_name": "Chen Dong", "signatory_title": "CPO"}]
            steps = [{"name": s, "status": "approved" if signed else "pending", "decided_by": "bench" if signed else None,
                      "decided_at": f"{on}T10:00:00+08:00" if signed else None, "comment": "同意" if signed else None}
                     for s in ("legal_review", "leadership_approval")]
            log = [{"step": s["name"], "decision": "approved", "by": "bench", "at": s["decided_at"], "comment": "同意"}
                   for s in steps if signed]
            out.agreements.append((aid, cid, kind, f"{kind} agreement {n}", "signed" if signed else "draft", parties,
                                   steps, log, on if signed else None, 1))
            version += 6 if signed else 1
            if signed:
                for p in parties:
                    out.signatures.append((cid, aid, p["organization_id"], p["signatory_name"], p["signatory_title"],
                                           on, "bench"))
            if kind == "investment":
                for p in range(rng.randint(1, 3)):
                    pid = f"{cid}-p{p}"
                    done_all = stage == "completed"
                    status = "completed" if done_all else rng.choice(["planned", "active", "active", "active"])
                    created_p = created + timedelta(days=200 + p)
                    done_count = 6 if done_all else rng.randint(0, 4)
                    realized = 0 if done_count == 0 else 1_000_000 * done_count
                    out.projects.append((pid, cid, aid, f"project-{pid}", f"Project {p} of cooperation {n}", "高新区",
                                         50_000_000, realized, department, officer, status, None, 2 + done_count,
                                         created_p, created_p + timedelta(days=30)))
                    # Some running projects are behind: their first open milestone is past due.
                    late = not done_all and rng.random() < 0.3
                    base = today - timedelta(days=rng.randint(1, 90)) if late else today + timedelta(days=rng.randint(10, 200))
                    for m in range(6):
                        done = m < done_count
                        due = base + timedelta(days=90 * (m - done_count))
                        out.milestones.append((pid, f"m{m + 1}", cid, m, f"Milestone {m + 1} 节点", due, None,
                                               "done" if done else "open", due if done else None,
                                               "Evidence" if done else None, "bench" if done else None, []))
        out.cooperations.append((
            cid, f"cooperation-{cid}", title, stage, government_id(lead), lead_name, company_id(partner),
            partner_name, areas, officer, department, started, started + timedelta(days=120),
            "Generated for the read bench.", "no agreement" if stage == "terminated" else None, search, version,
            "bench", created, created + timedelta(days=rng.randint(0, 400))))
    return out


def company_id(n: int) -> str:
    return f"bench-co-{n:05d}"


def company_name(n: int) -> str:
    return f"{SURNAMES[n % 20]}{SURNAMES[(n // 20) % 20]}科技有限公司 Partner Technology {n:05d} Co., Ltd."


def government_id(n: int) -> str:
    return f"bench-gov-{n:03d}"


def government_name(n: int) -> str:
    return f"第{n}市人民政府 Municipal Government {n:03d}"


COLUMNS = {
    "cooperations": ["id", "workflow_id", "title", "stage", "lead_organization_id", "lead_organization_name",
                     "partner_organization_id", "partner_organization_name", "areas", "liaison_officer", "department",
                     "started_on", "target_signing_date", "description", "termination_reason", "search_text",
                     "version", "created_by", "created_at", "updated_at"],
    "negotiation_events": ["cooperation_id", "id", "kind", "occurred_on", "ends_on", "place", "participants",
                           "summary", "recorded_by"],
    "agreements": ["id", "cooperation_id", "kind", "title", "status", "parties", "review_steps", "review_log",
                   "signed_on", "revision"],
    "signatures": ["cooperation_id", "agreement_id", "organization_id", "signatory_name", "signatory_title",
                   "signed_on", "recorded_by"],
    "projects": ["id", "cooperation_id", "agreement_id", "workflow_id", "title", "site", "committed_investment",
                 "realized_investment", "responsible_department", "responsible_officer", "status", "status_reason",
                 "version", "created_at", "updated_at"],
    "milestones": ["project_id", "id", "cooperation_id", "position", "name", "due_date", "owner", "status",
                   "completed_on", "evidence", "completed_by", "moves"],
}


async def load_step(owner_url: str, first: int, count: int, own_department: str) -> dict[str, Any]:
    """Add `count` generated cooperations (and their rows) with COPY, then ANALYZE; counts and seconds."""
    started = time.perf_counter()
    conn = await asyncpg.connect(owner_url)
    try:
        await _binary_jsonb(conn)
        if first == 0:
            await ensure_organizations(conn)
        generated = generate(first, count, own_department)
        generate_seconds = time.perf_counter() - started
        counts = {}
        async with conn.transaction():
            await conn.execute("SET LOCAL synchronous_commit = off")
            for table, columns in COLUMNS.items():
                rows = getattr(generated, "negotiation" if table == "negotiation_events" else table)
                await conn.copy_records_to_table(table, records=rows, columns=columns)
                counts[table] = len(rows)
        await conn.execute("ANALYZE cooperations, negotiation_events, agreements, signatures, projects, milestones")
        total = await conn.fetchval("SELECT count(*) FROM cooperations")
    finally:
        await conn.close()
    return {"added": counts, "cooperations_total": total, "generate_seconds": generate_seconds,
            "seconds": time.perf_counter() - started}


async def ensure_organizations(conn: asyncpg.Connection) -> None:
    await conn.copy_records_to_table(
        "organizations", columns=["id", "name", "kind", "region", "created_by"],
        records=[(company_id(n), company_name(n), "company", "Guangzhou", "bench") for n in range(COMPANIES)]
        + [(government_id(n), government_name(n), "government", "Sichuan", "bench") for n in range(GOVERNMENTS)])


# ---------------------------------------------------------------- the reads


@dataclass
class ReadTargets:
    """What the reader's department holds, to ask for things that exist."""

    partners: list[str]
    officers: list[str]
    cooperations: list[str]
    words: list[str]


async def targets(owner_url: str, department: str) -> ReadTargets:
    conn = await asyncpg.connect(owner_url)
    try:
        partners = [r[0] for r in await conn.fetch(
            "SELECT partner_organization_id FROM cooperations WHERE department = $1 GROUP BY 1 "
            "ORDER BY count(*) DESC LIMIT 200", department)]
        officers = [r[0] for r in await conn.fetch(
            "SELECT DISTINCT liaison_officer FROM cooperations WHERE department = $1 AND created_by = 'bench'",
            department)]
        cooperations = [r[0] for r in await conn.fetch(
            "SELECT c.id FROM cooperations c WHERE department = $1 AND created_by = 'bench' "
            "AND EXISTS (SELECT 1 FROM projects p WHERE p.cooperation_id = c.id) ORDER BY random() LIMIT 500",
            department)]
    finally:
        await conn.close()
    words = ["mianyang", "big data", "知识产权", "深圳", "technology 0", "officer 01"]
    return ReadTargets(partners, officers, cooperations, words)


def read_request(kind: str, rng: random.Random, t: ReadTargets) -> tuple[str, dict[str, Any]]:
    if kind.startswith("list_stage"):
        return "/cooperations", {"stage": rng.choice(["negotiating", "in_delivery", "completed"]), "limit": 50}
    if kind == "list_partner":
        return "/cooperations", {"partner_organization_id": rng.choice(t.partners), "limit": 50}
    if kind == "list_officer":
        return "/cooperations", {"liaison_officer": rng.choice(t.officers), "limit": 50}
    if kind == "list_q":
        return "/cooperations", {"q": rng.choice(t.words), "limit": 50}
    if kind == "list_overdue":
        return "/cooperations", {"overdue": "true", "limit": 50}
    assert kind == "page"
    return f"/cooperations/{rng.choice(t.cooperations)}", {}


async def measure_reads(http: httpx.AsyncClient, t: ReadTargets, samples: int, warmup: int = 3,
                        seed: int = 11) -> dict[str, Any]:
    """Sequential GETs as a liaison officer of one department; per kind p50/p95 in ms and rows seen."""
    rng = random.Random(seed)
    results: dict[str, Any] = {}
    for kind in READ_KINDS:
        times: list[float] = []
        rows: list[int] = []
        ordered = True
        for i in range(warmup + samples):
            path, params = read_request(kind, rng, t)
            pages = 3 if kind == "list_stage_page3" else 1
            cursor = None
            for _ in range(pages):
                query = {**params, **({"cursor": cursor} if cursor else {})}
                started = time.perf_counter()
                response = await http.get(path, params=query)
                ms = (time.perf_counter() - started) * 1000
                if response.status_code != 200:
                    raise RuntimeError(f"GET {path} {query}: {response.status_code} {response.text[:300]}")
                body = response.json()
                cursor = body.get("next_cursor") if kind != "page" else None
                if cursor is None:
                    break
            if i < warmup:
                continue
            times.append(ms)
            if kind == "page":
                rows.append(len(body["projects"]))
            else:
                items = body["items"]
                rows.append(len(items))
                keys = [(it["created_at"], it["id"]) for it in items]
                ordered &= keys == sorted(keys, reverse=True)
        results[kind] = {"samples": len(times), "p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95),
                         "mean_rows": sum(rows) / len(rows) if rows else 0, "ordered": ordered}
    return results


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def office_today() -> date:
    return datetime.now(OFFICE_TZ).date()


def chunks(total: int, steps: list[int]) -> Iterator[tuple[int, int]]:
    """(first, count) to grow the read model through each size in `steps` up to `total`."""
    loaded = 0
    for size in sorted(s for s in steps if s <= total):
        if size > loaded:
            yield loaded, size - loaded
            loaded = size

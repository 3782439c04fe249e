"""A synthetic but realistic audit trail: who did what to which cooperation, and when.

Rows come out in chain order (seq 1, 2, 3 ...) with `recorded_at` strictly increasing
and `hash` computed by `db.audit_chain.event_hash`, so `verify` accepts the result as
it would accept events appended one by one by the application.
"""

from __future__ import annotations

import random
import uuid
from bisect import bisect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from itertools import accumulate
from typing import Any

from db.audit_chain import GENESIS, HASHED_FIELDS, event_hash

# The column order of every row this module yields (ready for COPY).
COPY_COLUMNS = (*HASHED_FIELDS, "hash")

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
DAY_US = 86_400 * 1_000_000


@dataclass(frozen=True)
class Shape:
    """How big and how varied the dataset is. The defaults are the issue's 10M-event mix."""

    events: int = 10_000_000
    cooperations: int = 20_000
    actors: int = 200
    months: int = 24
    seed: int = 20_240_601

    def start_and_end(self, now: datetime) -> tuple[datetime, datetime]:
        """The time span covered: `months` ending a minute before `now`."""
        end = now.replace(second=0, microsecond=0) - timedelta(minutes=1)
        return end - timedelta(days=round(self.months * 30.44)), end


# ---------------------------------------------------------------- vocabulary

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾萧田董潘袁蔡蒋余于杜叶程魏苏吕丁任沈"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
         "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "文", "华", "红", "志强", "晓东", "海燕"]
DEPARTMENTS = ["招商局", "发展和改革委员会", "商务局", "财政局", "工业和信息化局", "自然资源局", "科技局",
               "市场监督管理局", "审计局", "投资促进中心", "法制办", "办公室"]
ROLES = [("liaison_officer", 60), ("reviewer", 20), ("leader", 10), ("auditor", 6), ("admin", 4)]
CITIES = ["广州", "深圳", "佛山", "东莞", "珠海", "中山", "惠州", "江门", "肇庆", "汕头", "湛江", "韶关"]
INDUSTRIES = ["新能源汽车", "生物医药", "集成电路", "智能制造", "现代物流", "跨境电商", "文化旅游", "数字经济",
              "新材料", "农产品加工", "海洋装备", "绿色建材"]
COMMENTS = ["同意签署", "请补充材料", "已与对方确认条款", "按会议纪要修改", "资金已到位", "进度滞后，需督办",
            "对方要求延期", "法务审核通过", "领导批示：加快推进", "等待对方盖章", "数据已核对",
            "Agreed at the steering meeting", "Updated after legal review"]
REFUSALS = ["不允许的状态转换：协议已签署", "缺少必要的签署方", "permission denied for this role",
            "投资金额必须大于零", "milestone date before project start"]
AGENTS = ["Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/126.0", "Mozilla/5.0 (Macintosh) Safari/17.5",
          "accord-cli/0.1.0", "python-httpx/0.28.1"]
STATUSES = ["negotiating", "drafting", "submitted", "signed", "active", "suspended", "closed"]


# ---------------------------------------------------------------- the cast


@dataclass
class Actor:
    id: str
    name: str
    role: str
    department: str | None
    auth_method: str
    ip: str | None
    agent: str | None


@dataclass
class Cooperation:
    id: str
    title: str
    region: str
    projects: list[str]
    run_id: str
    first_month: int
    last_month: int


def _uuid(rng: random.Random) -> uuid.UUID:
    # Seeded, unlike uuid4(): the same seed gives the same ids, and it is faster.
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def _person(rng: random.Random) -> Actor:
    roles, weights = zip(*ROLES)
    user_id, name = _uuid(rng).hex, rng.choice(SURNAMES) + rng.choice(GIVEN)
    role, department = rng.choices(roles, weights)[0], rng.choice(DEPARTMENTS)
    ip = f"10.{rng.randrange(1, 40)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    return Actor(user_id, name, role, department, "api_token", ip, rng.choice(AGENTS))


def make_actors(rng: random.Random, count: int) -> list[Actor]:
    actors = [_person(rng) for _ in range(count - 1)]
    # Workflow timers and the CLI act as the system: no department, no origin.
    actors.append(Actor(id="system", name="Accord workflow", role="system", department=None,
                        auth_method="workflow", ip=None, agent=None))
    return actors


def make_cooperations(rng: random.Random, count: int, months: int) -> list[Cooperation]:
    """Each cooperation is active for 3 to 12 months somewhere in the span, with 0 to 3 projects."""
    cooperations = []
    for _ in range(count):
        first = rng.randrange(months)
        cooperations.append(Cooperation(
            id=str(_uuid(rng)), title=f"{rng.choice(CITIES)}{rng.choice(INDUSTRIES)}合作项目",
            region=rng.choice(CITIES), projects=[str(_uuid(rng)) for _ in range(rng.choice((0, 1, 1, 2, 3)))],
            run_id=str(_uuid(rng)), first_month=first, last_month=min(months - 1, first + rng.randrange(3, 13)),
        ))
    return cooperations


def active_by_month(cooperations: list[Cooperation], months: int) -> list[list[Cooperation]]:
    active: list[list[Cooperation]] = [[] for _ in range(months)]
    for c in cooperations:
        for m in range(c.first_month, c.last_month + 1):
            active[m].append(c)
    return [month or cooperations for month in active]  # tiny shapes: never an empty month


# ---------------------------------------------------------------- actions

# What each action touches and changes. `scope` says which ids it carries:
# cooperation (cooperation workflow), project (project workflow), global (no cooperation).
Change = Callable[[random.Random, Cooperation, int], tuple[dict[str, Any], dict[str, Any]]]


@dataclass(frozen=True)
class Action:
    name: str
    entity_type: str
    scope: str
    weight: float
    change: Change = field(default=lambda rng, c, n: ({}, {}))
    refused: float = 0.0  # the share of attempts refused with an error


def _status(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    i = rng.randrange(len(STATUSES) - 1)
    return {"status": STATUSES[i]}, {"status": STATUSES[i + 1]}


def _money(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    return {}, {"amount": f"{rng.randrange(10_000, 500_000_000)}.00", "currency": "CNY", "source": rng.choice(CITIES)}


def _created(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    return {}, {"title": c.title, "region": c.region, "status": "negotiating"}


def _note(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    return {}, {"round": n, "summary": f"{c.region}方提出{rng.choice(INDUSTRIES)}配套要求"}


def _date(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    day = rng.randrange(1, 28)
    return {"due": f"2025-{rng.randrange(1, 13):02d}-{day:02d}"}, {"due": f"2026-{rng.randrange(1, 13):02d}-{day:02d}"}


def _named(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    return {}, {"name": f"{rng.choice(CITIES)}{rng.choice(INDUSTRIES)}有限公司", "region": c.region}


def _search(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    return {}, {"q": rng.choice(INDUSTRIES), "cursor": None}


def _http(rng: random.Random, c: Cooperation, n: int) -> tuple[dict, dict]:
    return {}, {"method": "POST", "path": f"/api/v1/cooperations/{c.id}", "status": rng.choice((400, 403, 409, 422))}


ACTIONS = [
    Action("cooperation.created", "cooperation", "cooperation", 2, _created),
    Action("cooperation.terminated", "cooperation", "cooperation", 0.2, _status),
    Action("cooperation.project_closed", "cooperation", "cooperation", 0.5, _status),
    Action("negotiation.recorded", "negotiation", "cooperation", 22, _note),
    Action("agreement.drafted", "agreement", "cooperation", 2, _status),
    Action("agreement.edited", "agreement", "cooperation", 8, _status, refused=0.03),
    Action("agreement.submitted", "agreement", "cooperation", 2, _status, refused=0.05),
    Action("agreement.party_signed", "agreement", "cooperation", 3, _status, refused=0.05),
    Action("agreement.signed", "agreement", "cooperation", 1.5, _status),
    Action("project.created", "project", "project", 2, _created),
    Action("project.suspended", "project", "project", 0.4, _status, refused=0.05),
    Action("project.resumed", "project", "project", 0.3, _status),
    Action("project.cancelled", "project", "project", 0.1, _status),
    Action("milestone.added", "milestone", "project", 6, _date),
    Action("milestone.moved", "milestone", "project", 4, _date, refused=0.05),
    Action("milestone.completed", "milestone", "project", 5, _date),
    Action("investment.recorded", "investment", "project", 7, _money, refused=0.02),
    Action("organization.created", "organization", "global", 0.5, _named),
    Action("person.created", "person", "global", 1, _named),
    Action("user.created", "user", "global", 0.05),
    Action("audit.searched", "audit_trail", "global", 9, _search),
    Action("audit.exported", "audit_trail", "global", 0.8, _search),
    Action("audit.verified", "audit_trail", "global", 0.1),
    Action("audit.archived", "audit_partition", "global", 0.01),
    Action("auth.rejected", "api", "global", 0.6, _http),
    Action("http.disconnect", "api", "global", 0.3, _http),
    Action("api:POST /cooperations/{cooperation_id}/agreement/sign", "cooperation", "cooperation", 0.8, _http, 1.0),
    Action("api:POST /projects/{project_id}/investments", "project", "project", 0.6, _http, 1.0),
    Action("api:POST /projects/{project_id}/milestones", "project", "project", 0.4, _http, 1.0),
    Action("api:POST /cooperations", "cooperation", "global", 0.5, _http, 1.0),
]
ACTION_NAMES = [a.name for a in ACTIONS]


# ---------------------------------------------------------------- the generator


class Generator:
    """Yields the rows of the chain in order; `head` is (seq, hash) of the last row yielded."""

    def __init__(self, shape: Shape, now: datetime) -> None:
        self.shape = shape
        self.rng = random.Random(shape.seed)
        self.actors = make_actors(self.rng, shape.actors)
        self.cooperations = make_cooperations(self.rng, shape.cooperations, shape.months)
        self.active = active_by_month(self.cooperations, shape.months)
        self.start, self.end = shape.start_and_end(now)
        # A few people do most of the work: Zipf-like weights.
        self._actor_weights = list(accumulate(1 / (rank + 1) ** 0.8 for rank in range(len(self.actors))))
        self._action_weights = list(accumulate(a.weight for a in ACTIONS))
        self._workflow_seq: dict[str, int] = {}
        self.head: tuple[int, bytes] = (0, GENESIS)

    def _pick(self, items: list, cumulative: list[float]) -> Any:
        return items[bisect(cumulative, self.rng.random() * cumulative[-1])]

    def rows(self) -> Iterator[tuple]:
        n, span_us = self.shape.events, (self.end - self.start) // timedelta(microseconds=1)
        start_us = (self.start - EPOCH) // timedelta(microseconds=1)
        step = span_us / n
        prev = GENESIS
        for i in range(n):
            # Evenly spread, jittered within the step: strictly increasing, as the chain requires.
            recorded_us = start_us + int(i * step + self.rng.random() * step * 0.5)
            row = self._event(i + 1, recorded_us, i * self.shape.months // n, prev)
            prev = row["hash"] = event_hash(row)
            self.head = (i + 1, prev)
            yield tuple(row[c] for c in COPY_COLUMNS)

    def _event(self, seq: int, recorded_us: int, month: int, prev: bytes) -> dict[str, Any]:
        rng = self.rng
        actor = self._pick(self.actors, self._actor_weights)
        action = self._pick(ACTIONS, self._action_weights)
        coop = rng.choice(self.active[month])
        if action.scope == "project" and not coop.projects:
            action = ACTIONS[3]  # no project yet: the cooperation is still negotiating
        project = rng.choice(coop.projects) if action.scope == "project" else None
        workflow = self._workflow(action, coop, project)
        event_seq = self._next_seq(workflow) if workflow else None
        before, after = action.change(rng, coop, event_seq or 0)
        refused = action.refused and rng.random() < action.refused
        recorded_at = EPOCH + timedelta(microseconds=recorded_us)
        return {
            "seq": seq, "event_id": _uuid(rng), "recorded_at": recorded_at,
            "occurred_at": recorded_at - timedelta(microseconds=rng.randrange(0, 2_000_000)),
            "actor_id": actor.id, "actor_name": actor.name, "actor_role": actor.role,
            "actor_department": actor.department, "auth_method": actor.auth_method, "source_ip": actor.ip,
            "user_agent": actor.agent, "request_id": f"{rng.getrandbits(128):032x}" if actor.ip else None,
            "action": action.name, "entity_type": action.entity_type,
            "entity_id": self._entity_id(action, coop, project, event_seq),
            "cooperation_id": coop.id if action.scope != "global" else None, "project_id": project,
            "before": before if not refused else {}, "after": after,
            "comment": rng.choice(COMMENTS) if rng.random() < 0.3 else None,
            "outcome": ("failed" if rng.random() < 0.1 else "refused") if refused else "succeeded",
            "error": rng.choice(REFUSALS) if refused else None,
            "workflow_id": workflow, "run_id": coop.run_id if workflow else None, "event_seq": event_seq,
            "state": ({"status": after.get("status", "active"), "version": event_seq, "title": coop.title}
                      if workflow and not refused else None),
            "prev_hash": prev,
        }

    def _workflow(self, action: Action, coop: Cooperation, project: str | None) -> str | None:
        if action.name.startswith("api:") or action.scope == "global":
            return None  # refused at the API, or not a workflow's doing
        return f"project-{project}" if project else f"cooperation-{coop.id}"

    def _next_seq(self, workflow: str) -> int:
        self._workflow_seq[workflow] = seq = self._workflow_seq.get(workflow, 0) + 1
        return seq

    def _entity_id(self, action: Action, coop: Cooperation, project: str | None, n: int | None) -> str:
        if action.scope == "global":
            return "audit_events" if action.entity_type == "audit_trail" else f"{self.rng.getrandbits(64):016x}"
        if action.entity_type in ("milestone", "investment"):
            return f"{project}-{action.entity_type[0]}{n}"
        return project if action.entity_type == "project" else coop.id

    def months_used(self) -> list[datetime]:
        """First day of every UTC month the span touches: each needs its partition."""
        first, months = self.start.replace(day=1, hour=0, minute=0), []
        while first <= self.end:
            months.append(first)
            first = (first + timedelta(days=32)).replace(day=1)
        return months

"""Schemathesis against /openapi.json, then a hostile corpus over every operation.

1. `test_schemathesis`: for every operation of the app's OpenAPI document, Schemathesis
   generates requests (valid and invalid ones; on random ids and on the fuzzer's own real
   records) and checks every answer with its default checks: no 5xx, the status code, the
   content type, the headers and the body as documented, valid data accepted and invalid
   data refused, authentication enforced. A bounded number of examples per operation and
   generation mode in `make test`; `ACCORD_FUZZ_EXAMPLES=N` (`make fuzz`) runs N.
2. The hostile corpus, sent by hand to every operation that takes a JSON body or string
   parameters: NUL bytes, lone surrogates, 1 MB strings, SQL-injection strings, CR/LF and
   bidi/zero-width text in every string field, query parameter and path id; a 10 MB body
   (413, with and without Content-Length); JSON nested 1,000 deep (422); raw bytes no HTTP
   client sends in the headers that end up in answers, the audit trail or the idempotency
   store (Idempotency-Key, If-Match, User-Agent, Authorization, Cookie, X-CSRF-Token,
   Content-Type). Never a 5xx and never an exception in the app (a streamed 200 that dies
   half-way counts); every refusal is JSON with a `detail`; no answer header carries CR, LF
   or NUL; and a refused request changes nothing: after each one, the fuzzer's accepted
   audit events, the records of its department (count and versions), the registry, its
   tokens, feeds and the reminder policies are as they were. `make test` sends every value
   that must be refused everywhere, and shares the rest out (each string field, URL or
   header gets one of them); a full run (ACCORD_FUZZ_EXAMPLES set) sends every one everywhere.
3. What the fuzzer found, as plain regression tests.

Requests go straight into the ASGI app on the session's event loop (tests/hostile.py says why
Schemathesis's own ASGI transport cannot be used). The fuzzer acts as a user of its own: a
liaison officer and auditor of a department of its
own, so what its accepted writes create stays there and no other test sees it. It sends from
an address of its own too, so its failed sign-ins do not throttle anyone else's.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import hypothesis
import pytest
import pytest_asyncio
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup  # a BaseExceptionGroup, not an Exception
from schemathesis.specs.openapi.checks import negative_data_rejection

from api.app import create_app
from tests import hostile
from tests.conftest import new_id, user_client
from tests.test_api_support import (
    FRAMEWORK_SIGNED_ON,
    INVESTMENT_SIGNED_ON,
    REVIEW_CHAIN,
    Coop,
    framework_body,
    investment_body,
    ok,
    open_cooperation,
)

# ---------------------------------------------------------------- how much

EXAMPLES = int(os.environ.get("ACCORD_FUZZ_EXAMPLES") or 0)
"""Examples per operation and generation mode; 0: the bounded default of `make test`."""
MAX_EXAMPLES = EXAMPLES or 3
REQUEST_TIMEOUT = 60

# Schemathesis's default checks, all of them, with one adjustment: `positive_data_acceptance`
# (a request the schema allows must not be refused) also lets through the refusals for rules
# no JSON Schema states: 400 (an If-Match that is no ETag; a token used to end a session),
# 412 (an If-Match of another version), 413 and 422 (references to records that do not
# exist, one field against another, dates in the future, opaque cursors not from this API,
# the password policy, the size of a whole record). Everything else stays as Schemathesis has it.
CONFIG = schemathesis.Config.from_dict({"checks": {"positive_data_acceptance": {"expected-statuses": [
    "2xx", "3xx", "400", "401", "403", "404", "409", "412", "413", "422", "429", "5xx"]}}})

# The operations, from a schema-only build of the app (the routes do not depend on the services).
DOCUMENT = create_app(SimpleNamespace(environment="test")).openapi()  # type: ignore[arg-type]
OPERATIONS = hostile.operations(DOCUMENT)
BODY_OPERATIONS = [op for op in OPERATIONS if op.takes_json]
TEXT_OPERATIONS = [op for op in OPERATIONS if op.takes_json or op.query_params or op.path_params]

SENT: dict[str, int] = {}
"""Requests sent per test (Schemathesis's own probes not counted), for the summary."""
STATUSES: dict[str, dict[int, int]] = {}
"""The answers of each hostile sweep, by status."""


# ---------------------------------------------------------------- the fuzzer and its records


@dataclass
class Fuzzer:
    token: str
    user_id: str
    department: str
    http: httpx.AsyncClient
    desk: dict[str, httpx.AsyncClient]  # who decides each review step: a reviewer, a leader of the department
    ids: dict[str, list[str]]
    """Real values of each path parameter (its own records), by parameter name."""

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def bearer(self) -> tuple[bytes, bytes]:
        return (b"authorization", f"Bearer {self.token}".encode())


async def _approved_and_signed(coop: Coop, body: dict[str, Any], desk: dict[str, httpx.AsyncClient],
                               parties: list[str], signed_on: Any) -> str:
    """Drafted, approved by the desk, signed by `parties` (none: approved only)."""
    agreement = await coop.draft(body)
    coop.state = await coop.post(f"/agreements/{agreement}/submit")
    for step in REVIEW_CHAIN:
        coop.state = await coop.decide(agreement, step, by=desk[step])
    for organization in parties:
        await coop.sign(agreement, organization, signed_on)
    return agreement


async def records(http: httpx.AsyncClient, desk: dict[str, httpx.AsyncClient], department: str) -> dict[str, Any]:
    """A cooperation of `department` in delivery with one project, and agreements in draft, in review
    and approved (unsigned)."""
    coop = await open_cooperation(http, department=department)
    w = coop.w
    coop.framework_id = await _approved_and_signed(coop, framework_body(w), desk, [w.gov_id, w.company_id],
                                                   FRAMEWORK_SIGNED_ON)
    coop.investment_id = await _approved_and_signed(coop, investment_body(w), desk, [w.park_id, w.company_id],
                                                    INVESTMENT_SIGNED_ON)
    project = await coop.add_project()
    draft = await coop.draft(investment_body(w, title="draft"))
    review = await coop.draft(investment_body(w, title="in review"))
    coop.state = await coop.post(f"/agreements/{review}/submit")
    approved = await _approved_and_signed(coop, investment_body(w, title="approved"), desk, [], None)
    return {"cooperation_id": coop.id, "project_id": project, "draft": draft, "review": review,
            "approved": approved, "signed": coop.investment_id, "framework": coop.framework_id,
            "organizations": [w.gov_id, w.park_id, w.company_id]}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzzer(app, pool: asyncpg.Pool) -> AsyncIterator[Fuzzer]:
    """A liaison officer + auditor of a department of its own, and its records."""
    department = f"Fuzz Bureau 模糊测试局 {new_id()}"
    async with (user_client(app, pool, ["liaison_officer", "auditor"], department, "Fuzz Officer") as officer,
                user_client(app, pool, ["reviewer"], department, "Fuzz Counsel") as reviewer,
                user_client(app, pool, ["leader"], department, "Fuzz Director") as leader):
        desk = {"legal_review": reviewer.http, "leadership_approval": leader.http}
        mine = await records(officer.http, desk, department)
        feed = ok(await officer.http.post("/calendar-feeds", json={"scope": "me"}), 201)
        ids = {
            "cooperation_id": [mine["cooperation_id"]],
            "agreement_id": [mine["draft"], mine["review"], mine["approved"], mine["signed"], mine["framework"]],
            "project_id": [mine["project_id"]],
            "milestone_id": ["site", "completion", "operation"],
            "organization_id": mine["organizations"],
            "step": list(REVIEW_CHAIN),
            "year": ["2026", "2025"],
            "secret": [feed["url"].rsplit("/", 1)[-1].removesuffix(".ics")],
            "feed_id": [feed["id"]],
            "user_id": [officer.user_id],
            "name": [department],
        }
        yield Fuzzer(officer.token, officer.user_id, department, officer.http, desk, ids)
        # The fuzzer must still be itself at the end: nothing it sent revoked its own token.
        assert (await officer.http.get("/me")).status_code == 200


# ---------------------------------------------------------------- 1. Schemathesis


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def bridge(app) -> hostile.BridgeTransport:
    return hostile.BridgeTransport(app, asyncio.get_running_loop(), REQUEST_TIMEOUT)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def schema(app, bridge: hostile.BridgeTransport):
    """The app's own OpenAPI document, as GET /openapi.json serves it; requests go through the bridge."""
    return hostile.bridged(schemathesis.openapi.from_dict(copy.deepcopy(app.openapi()), config=CONFIG), bridge)


def _strategies(operation: Any, fuzzer: Fuzzer) -> list[tuple[str, Any]]:
    """Valid and invalid requests on random ids and, for an operation on a record, on real ones."""
    modes = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    found = [(mode.value, operation.as_strategy(mode)) for mode in modes]
    names = [p.name for p in operation.path_parameters]
    if names and all(n in fuzzer.ids for n in names):
        real = st.fixed_dictionaries({n: st.sampled_from(fuzzer.ids[n]) for n in names})
        for mode in modes:
            found.append((f"{mode.value} on real records",
                          real.flatmap(lambda ids, mode=mode: operation.as_strategy(mode, path_parameters=ids))))
    return found


def _query_shape_lost_on_the_wire(case: schemathesis.Case) -> bool:
    """An invalid case whose fault may be only a query parameter given several values or an object
    (a one-value list Schemathesis sorts out itself). On the wire that is the parameter repeated,
    which Starlette answers as if only the last one had been sent (as most servers do), or plain
    text: the app cannot tell it from a valid value, and it has no list- or object-valued query
    parameter to confuse. Such a case is still sent and checked, except for being refused."""
    return any(isinstance(value, dict) or (isinstance(value, list) and len(value) > 1)
               for value in (case.query or {}).values())


def _run(operation: Any, fuzzer: Fuzzer, sent: list[str]) -> list[str]:
    """Runs in a worker thread; each request runs on the session loop (tests/hostile.py)."""
    failures = []
    for name, strategy in _strategies(operation, fuzzer):

        @hypothesis.settings(max_examples=MAX_EXAMPLES, derandomize=True, database=None, deadline=None,
                             phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck),
                             print_blob=False)
        @given(case=strategy)
        def fuzz(case: schemathesis.Case) -> None:
            sent.append(name)
            excluded = [negative_data_rejection] if _query_shape_lost_on_the_wire(case) else []
            case.call_and_validate(base_url=hostile.BASE_URL, headers=fuzzer.auth, excluded_checks=excluded,
                                   timeout=REQUEST_TIMEOUT)

        try:
            fuzz()
        except hypothesis.errors.Unsatisfiable:
            pass  # nothing invalid to send: no parameters, or only free strings in the path
        except (Exception, FailureGroup) as error:  # noqa: BLE001 - collected per mode, reported together
            failures.append(f"--- {operation.label} ({name}):\n{error}")
    return failures


@pytest.mark.parametrize("label", [op.label for op in OPERATIONS])
async def test_schemathesis(schema, bridge: hostile.BridgeTransport, fuzzer: Fuzzer, label: str) -> None:
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    bridge.errors.clear()
    sent: list[str] = []
    failures = await asyncio.to_thread(_run, operation, fuzzer, sent)
    failures += [f"--- the app raised: {e}" for e in bridge.errors]
    SENT[f"schemathesis {label}"] = len(sent)
    if failures:
        pytest.fail("\n".join(failures)[:20000], pytrace=False)


# ---------------------------------------------------------------- 2. the hostile corpus

SNAPSHOT = """
SELECT
  (SELECT count(*) FROM audit_events WHERE actor_id = $1 AND outcome = 'succeeded') AS accepted_events,
  (SELECT count(*) || '/' || coalesce(sum(version), 0) FROM cooperations WHERE department = $2) AS cooperations,
  (SELECT count(*) || '/' || coalesce(sum(p.version), 0)
     FROM projects p JOIN cooperations c ON c.id = p.cooperation_id WHERE c.department = $2) AS projects,
  (SELECT count(*) FROM agreements a JOIN cooperations c ON c.id = a.cooperation_id WHERE c.department = $2)
    AS agreements,
  (SELECT count(*) FROM organizations) AS organizations,
  (SELECT count(*) FROM people) AS people,
  (SELECT count(*) FILTER (WHERE revoked_at IS NULL) || '/' || count(*) FROM api_tokens WHERE user_id = $1)
    AS tokens,
  (SELECT count(*) FILTER (WHERE revoked_at IS NULL) || '/' || count(*) FROM calendar_feeds WHERE created_by = $1)
    AS feeds,
  (SELECT count(*) FROM reminder_policies) AS policies
"""


class Sweep:
    """Sends hostile requests as the fuzzer and judges each answer; collects every problem."""

    def __init__(self, app: Any, pool: asyncpg.Pool, fuzzer: Fuzzer, name: str) -> None:
        self.app, self.pool, self.fuzzer, self.name = app, pool, fuzzer, name
        self.problems: list[str] = []
        self.statuses: dict[int, int] = {}
        self.before: dict[str, Any] | None = None

    async def state(self) -> dict[str, Any]:
        return dict(await self.pool.fetchrow(SNAPSHOT, self.fuzzer.user_id, self.fuzzer.department))

    async def send(self, label: str, method: str, target: str, *, body: bytes = b"",
                   headers: list[tuple[bytes, bytes]] | None = None, content_type: bytes | None = b"application/json",
                   auth: bool = True, chunks: int = 0, expect: set[int] | None = None,
                   refuse: bool = False) -> hostile.Answer:
        """One request; `expect`: the statuses allowed; `refuse`: it must be refused (4xx)."""
        if self.before is None:
            self.before = await self.state()
        sent_headers = list(headers or [])
        names = {k.lower() for k, _ in sent_headers}
        if auth and b"authorization" not in names:
            sent_headers.append(self.fuzzer.bearer)
        if body and content_type is not None and b"content-type" not in names:
            sent_headers.append((b"content-type", content_type))
        answer = await hostile.call(self.app, method, target, headers=sent_headers, body=body, chunks=chunks,
                                    timeout=REQUEST_TIMEOUT)
        self.statuses[answer.status] = self.statuses.get(answer.status, 0) + 1
        where = f"{label}: {method} {target[:160]}"
        problems = []
        if answer.status >= 500 or answer.error:
            problems.append(f"server error {answer.brief()}")
        if expect is not None and answer.status not in expect:
            problems.append(f"expected {sorted(expect)}, got {answer.brief()}")
        if refuse and answer.status < 400:
            problems.append(f"accepted: {answer.brief()}")
        problems += self._shape(answer)
        after = await self.state()
        if answer.status >= 400 and after != self.before:
            changed = {k: (self.before[k], after[k]) for k in after if after[k] != self.before[k]}
            problems.append(f"refused with {answer.status}, yet changed {changed}")
        if 200 <= answer.status < 300 and method != "GET" and target.split("?")[0].endswith(CASCADES):
            after = await self.settled(after)
        self.before = after
        self.problems += [f"{where}: {p}" for p in problems]
        return answer

    async def settled(self, state: dict[str, Any], quiet: float = 0.5, limit: float = 15) -> dict[str, Any]:
        """The state once the workflows' reactions to an accepted write have landed (quiet for `quiet` s)."""
        loop = asyncio.get_running_loop()
        deadline, quiet_since = loop.time() + limit, loop.time()
        while loop.time() < deadline and loop.time() - quiet_since < quiet:
            await asyncio.sleep(0.05)
            now = await self.state()
            if now != state:
                state, quiet_since = now, loop.time()
        return state

    @staticmethod
    def _shape(answer: hostile.Answer) -> list[str]:
        problems = []
        for key, value in answer.headers:
            if any(c in value for c in (b"\r", b"\n", b"\x00")) or key.lower().startswith(b"x-injected"):
                problems.append(f"answer header {key!r}: {value[:80]!r}")
        content_type = answer.header("content-type") or ""
        if answer.status >= 400:
            if not content_type.startswith("application/json"):
                problems.append(f"refusal is {content_type!r}, not JSON: {answer.brief()}")
            else:
                try:
                    detail = answer.json()["detail"]
                except (ValueError, KeyError, TypeError):
                    problems.append(f"refusal without a detail: {answer.brief()}")
                else:
                    if not detail:
                        problems.append(f"empty detail: {answer.brief()}")
        elif content_type.startswith("application/json"):
            try:
                answer.json()
            except ValueError:
                problems.append(f"answer is not JSON: {answer.brief()}")
        return problems

    def report(self) -> None:
        SENT[self.name] = sum(self.statuses.values())
        STATUSES[self.name] = dict(sorted(self.statuses.items()))
        if self.problems:
            shown = "\n".join(self.problems[:60])
            more = f"\n… and {len(self.problems) - 60} more" if len(self.problems) > 60 else ""
            pytest.fail(f"{len(self.problems)} problems in {SENT[self.name]} requests "
                        f"(statuses {dict(sorted(self.statuses.items()))}):\n{shown}{more}", pytrace=False)


_TARGET: dict[str, str] = {}


@pytest_asyncio.fixture(loop_scope="session")
async def target(pool: asyncpg.Pool, fuzzer: Fuzzer) -> dict[str, str]:
    """Records of the fuzzer's department to aim at, by path parameter and template name: open
    ones (a cooperation in delivery, its open project, a draft agreement), made again when an
    accepted hostile write (a terminate, a cancel, a submit) has closed the last ones."""
    if _TARGET:
        row = await pool.fetchrow(
            "SELECT c.stage, p.status, a.status AS draft FROM cooperations c JOIN projects p ON p.id = $2 "
            "JOIN agreements a ON a.cooperation_id = c.id AND a.id = $3 WHERE c.id = $1",
            _TARGET["cooperation_id"], _TARGET["project_id"], _TARGET["agreement_id"])
        if row is not None and row["stage"] == "in_delivery" and row["status"] in ("planned", "active") \
                and row["draft"] == "draft":
            return _TARGET
    mine = await records(fuzzer.http, fuzzer.desk, fuzzer.department)
    gov, park, company = mine["organizations"]
    _TARGET.clear()
    _TARGET.update({
        "cooperation_id": mine["cooperation_id"], "project_id": mine["project_id"], "agreement_id": mine["draft"],
        "organization_id": gov, "milestone_id": "site", "step": "legal_review", "year": "2026",
        "secret": "x" * 43, "feed_id": fuzzer.ids["feed_id"][0], "user_id": fuzzer.user_id,
        "name": fuzzer.department, "message_id": "no-such-message", "token_id": "no-such-token",
        "webhook_id": "no-such-webhook", "document_id": "no-such-document", "version": "1",
        # for the body templates
        "gov": gov, "park": park, "company": company, "signed": mine["signed"], "approved": mine["approved"],
        "department": fuzzer.department, "later_milestone": "operation",
    })
    return _TARGET


# The operations that end a record go last, so the others still find it open; the cooperation's last.
ENDINGS = ("/submit", "/suspend", "/cancel", "/terminate")
# Accepted writes whose workflows react after the answer (a new project's first write; a closed
# project tells its cooperation; a terminated cooperation closes its projects): the sweep waits
# for the reactions before it judges the next refusal by what changed.
CASCADES = ("/projects", "/cancel", "/terminate", "/complete")


def _ordered(ops: list[hostile.Operation]) -> list[hostile.Operation]:
    def rank(op: hostile.Operation) -> tuple[int, int]:
        ending = next((i for i, suffix in enumerate(ENDINGS) if op.path.endswith(suffix)), -1)
        return (op.method == "DELETE", ending)
    return sorted(ops, key=rank)


_PARTIES = [{"organization_id": "{park}", "signatory_name": "Director Zhou", "signatory_title": "Park Director"},
            {"organization_id": "{company}", "signatory_name": "Xie Xuhui", "signatory_title": "Chairman"}]
_POLICY = {"name": "Fuzz policy", "before_working_days": [5, 1], "on_due_date": True, "overdue_every_days": 5,
           "recipient": "liaison_officer", "escalation": [{"after_working_days": 3, "recipient": "department_leader"}],
           "note": "fuzz"}
TEMPLATES: dict[str, Any] = {
    # Bodies the app accepts as they are (on `target`), so that a hostile value in one field is the
    # only thing wrong with the request; {uniq} is new for each request. Other operations get a
    # body of the right shape from their schema (hostile.plausible).
    "POST /api/v1/organizations": {"name": "Fuzz Co {uniq}", "kind": "company", "region": "Mianyang"},
    "POST /api/v1/organizations/{organization_id}/people": {"name": "Li Wei", "title": "Clerk"},
    "POST /api/v1/cooperations": {
        "title": "Fuzz cooperation {uniq}", "lead_organization_id": "{gov}", "partner_organization_id": "{company}",
        "areas": ["Sci-Tech Expo"], "liaison_officer": "Officer Fuzz", "department": "{department}",
        "started_on": "2024-01-10", "target_signing_date": "2024-03-01", "description": "fuzz"},
    "POST /api/v1/cooperations/{cooperation_id}/negotiation-events": {
        "kind": "meeting", "occurred_on": "2024-01-02", "ends_on": "2024-01-03", "place": "Mianyang",
        "participants": ["Li Wei"], "summary": "fuzz"},
    "POST /api/v1/cooperations/{cooperation_id}/agreements": {
        "kind": "investment", "title": "Fuzz agreement {uniq}", "review_steps": ["legal_review"], "parties": _PARTIES},
    "PATCH /api/v1/cooperations/{cooperation_id}/agreements/{agreement_id}": {
        "title": "Fuzz agreement {uniq}", "review_steps": ["legal_review"], "parties": _PARTIES},
    "POST /api/v1/cooperations/{cooperation_id}/agreements/{agreement_id}/signatures": {
        "organization_id": "{park}", "signed_on": "2024-06-15", "signatory_name": "Zhou",
        "signatory_title": "Director"},
    "POST /api/v1/cooperations/{cooperation_id}/projects": {
        "agreement_id": "{signed}", "title": "Fuzz project {uniq}", "site": "High-tech Zone",
        "committed_investment": "1000.00", "responsible_department": "{department}", "responsible_officer": "Li",
        "milestones": [{"name": "site", "due_date": "2030-01-01", "owner": "Li"}]},
    "POST /api/v1/projects/{project_id}/milestones": {"name": "Fuzz {uniq}", "due_date": "2030-01-01", "owner": "Li"},
    "POST /api/v1/projects/{project_id}/milestones/{milestone_id}/move": {"new_due_date": "2031-{month}-01",
                                                                          "reason": "fuzz"},
    "POST /api/v1/projects/{project_id}/milestones/{milestone_id}/complete": {"completed_on": "2024-07-01",
                                                                              "evidence": "fuzz"},
    "POST /api/v1/projects/{project_id}/investments": {"received_on": "2024-07-01", "amount": "1.00",
                                                       "source_note": "fuzz"},
    "PUT /api/v1/me/notifications": {"email": "fuzz@example.test", "language": "zh"},
    "POST /api/v1/me/tokens": {"name": "fuzz {uniq}", "scope": "read", "expires_in_days": 1},
    "PUT /api/v1/projects/{project_id}/reminder-policy": _POLICY,
    "PUT /api/v1/projects/{project_id}/milestones/{milestone_id}/reminder-policy": _POLICY,
    "PUT /api/v1/organizations/{organization_id}/reminder-policy": _POLICY,
}
# Where a template needs other records than `target`'s defaults: an approved agreement to sign; a
# milestone to move that the template of /complete does not complete first.
PATH_IDS = {
    "POST /api/v1/cooperations/{cooperation_id}/agreements/{agreement_id}/signatures": {"agreement_id": "approved"},
    "POST /api/v1/projects/{project_id}/milestones/{milestone_id}/move": {"milestone_id": "later_milestone"},
}
# A liaison officer may not set an organization's reminder policy: the template is valid, the actor not.
ONLY_FOR_LEADERS = {"PUT /api/v1/organizations/{organization_id}/reminder-policy"}
_COUNTER = iter(range(10**9))


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        n = next(_COUNTER)
        return value.format(**ids, uniq=f"{new_id()}", month=f"{n % 12 + 1:02d}")
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def _path(op: hostile.Operation, target: dict[str, str], **replaced: str) -> str:
    ids = {**target, **{name: target[key] for name, key in PATH_IDS.get(op.label, {}).items()}, **replaced}
    return hostile.fill_path(op.path, ids)


def _body(op: hostile.Operation, ids: dict[str, str]) -> Any:
    assert op.body_schema is not None
    if op.label in TEMPLATES:
        return _fill(TEMPLATES[op.label], ids)
    return hostile.plausible(DOCUMENT, op.body_schema)


async def test_the_templates_are_accepted_as_they_are(app, pool, fuzzer: Fuzzer, target: dict[str, str]) -> None:
    """So that in the sweeps below, the hostile value is the one thing wrong with a request."""
    sweep = Sweep(app, pool, fuzzer, "templates")
    for op in _ordered([op for op in BODY_OPERATIONS if op.label in TEMPLATES]):
        allowed = {200, 201} if op.label not in ONLY_FOR_LEADERS else {403}
        await sweep.send(op.label, op.method, _path(op, target),
                         body=hostile.json_bytes(_body(op, target)), expect=allowed)
    sweep.report()


TEXT_KINDS = [*hostile.HOSTILE_TEXT, "lone-surrogate"]
# No field of the API takes these; in a URL, a lone surrogate (%ED%A0%80, not UTF-8) arrives as
# U+FFFD, as Starlette decodes the query and uvicorn the path, and is then ordinary text.
MUST_REFUSE = {"nul", "only-nul", "lone-surrogate", "1mb"}
MUST_REFUSE_IN_URLS = MUST_REFUSE - {"lone-surrogate"}
# The others are text a field may well hold, so most requests with them are accepted and run
# a workflow update: outside a full run they share the string fields among them, each kind
# taking every n-th field (all fields get one of them), instead of each taking every field.
ACCEPTABLE = [kind for kind in TEXT_KINDS if kind not in MUST_REFUSE]


def _takes(kind: str, slot_number: int) -> bool:
    if EXAMPLES or kind not in ACCEPTABLE:
        return True
    return slot_number % len(ACCEPTABLE) == ACCEPTABLE.index(kind)


def _hostile(kind: str) -> str:
    return hostile.LONE_SURROGATE if kind == "lone-surrogate" else hostile.HOSTILE_TEXT[kind]


def _documented(op: hostile.Operation) -> set[str]:
    return set(DOCUMENT["paths"][op.path][op.method.lower()]["responses"])


@pytest.mark.parametrize("kind", TEXT_KINDS)
async def test_hostile_text_in_every_string_field(app, pool, fuzzer: Fuzzer, target: dict[str, str],
                                                  kind: str) -> None:
    """Each string field of each JSON body in turn holds the hostile text, the rest of the body valid
    (for the operations of TEMPLATES; of the right shape for the others)."""
    sweep = Sweep(app, pool, fuzzer, f"text in bodies: {kind}")
    value = _hostile(kind)
    slots = [(op, slot) for op in _ordered(BODY_OPERATIONS)
             for slot in hostile.string_slots(DOCUMENT, op.body_schema or {}, _body(op, target))]
    for number, (op, slot) in enumerate(slots):
        if not _takes(kind, number):
            continue
        body = hostile.replaced(_body(op, target), slot, value)
        await sweep.send(f"{op.label} body{list(slot)}", op.method, _path(op, target),
                         body=hostile.json_bytes(body), refuse=kind in MUST_REFUSE)
    sweep.report()


@pytest.mark.parametrize("kind", TEXT_KINDS)
async def test_hostile_text_in_every_query_parameter_and_path_id(app, pool, fuzzer: Fuzzer,
                                                                 target: dict[str, str], kind: str) -> None:
    """Each string query parameter and each path id in turn holds the hostile text (percent-encoded).
    A megabyte-long URL costs 0.1 to 0.5 s in Starlette alone (decoding the query; matching each
    route's pattern against the path), so outside a full run one in ten gets the 1 MB text."""
    sweep = Sweep(app, pool, fuzzer, f"text in queries and paths: {kind}")
    raw = _hostile(kind)
    encoded = hostile.query_value(raw)
    urls = []
    for op in _ordered(TEXT_OPERATIONS):
        path = _path(op, target)
        urls += [(op, f"?{p['name']}", f"{path}?{p['name']}={encoded}") for p in op.query_params]
        urls += [(op, f"{{{name}}}", _path(op, target, **{name: raw})) for name in op.path_params]
    for number, (op, where, url) in enumerate(urls):
        if kind == "1mb" and not EXAMPLES and number % 10:
            continue
        body = hostile.json_bytes(_body(op, target)) if op.takes_json else b""
        await sweep.send(f"{op.label} {where}", op.method, url, body=body, refuse=kind in MUST_REFUSE_IN_URLS)
    sweep.report()


async def test_ten_megabyte_body_is_413(app, pool, fuzzer: Fuzzer, target: dict[str, str]) -> None:
    """With a Content-Length (refused unread) and without one (refused as it passes the limit)."""
    sweep = Sweep(app, pool, fuzzer, "10 MB bodies")
    huge = b'{"name": "' + b"x" * hostile.TEN_MB + b'"}'
    for op in OPERATIONS:
        if op.method in ("GET", "HEAD"):
            continue
        path = _path(op, target)
        await sweep.send(f"{op.label} 10 MB", op.method, path, body=huge, expect={413})
        await sweep.send(f"{op.label} 10 MB chunked", op.method, path, body=huge, chunks=64, expect={413})
    sweep.report()


async def test_thousand_deep_json_is_422(app, pool, fuzzer: Fuzzer, target: dict[str, str]) -> None:
    sweep = Sweep(app, pool, fuzzer, "1,000-deep JSON")
    deep_object, deep_array = hostile.deep_json(), b"[" * hostile.DEEP_JSON_DEPTH + b"]" * hostile.DEEP_JSON_DEPTH
    for op in BODY_OPERATIONS:
        path = _path(op, target)
        for label, body in (("object", deep_object), ("array", deep_array)):
            answer = await sweep.send(f"{op.label} deep {label}", op.method, path, body=body, expect={422})
            if answer.status == 422 and "deep" not in answer.body.decode("utf-8", "replace"):
                sweep.problems.append(f"{op.label}: the 422 does not say the JSON is too deep: {answer.brief()}")
    sweep.report()


async def test_lone_surrogate_as_the_whole_body(app, pool, fuzzer: Fuzzer, target: dict[str, str]) -> None:
    """The raw bytes "\\ud800" (a JSON string holding a lone surrogate) as the body, and inside an array."""
    sweep = Sweep(app, pool, fuzzer, "lone surrogate bodies")
    for op in BODY_OPERATIONS:
        path = _path(op, target)
        for body in (hostile.LONE_SURROGATE_JSON, b"[" + hostile.LONE_SURROGATE_JSON + b"]",
                     b'{"\\ud800": 1}', b'"\xed\xa0\x80"'):
            await sweep.send(f"{op.label} {body!r}", op.method, path, body=body, expect={422})
    sweep.report()


HEADER_FIELDS = {
    # header: which operations it matters to
    b"idempotency-key": lambda op: op.method in ("POST", "PATCH"),
    b"if-match": lambda op: any(p.get("name", "").lower() == "if-match" for p in op.spec.get("parameters", [])),
    b"user-agent": lambda op: True,  # recorded in the audit trail with every attempt
    b"x-csrf-token": lambda op: op.method != "GET",
    b"content-type": lambda op: op.takes_json,
    b"cookie": lambda op: True,
    b"authorization": lambda op: True,
}


@pytest.mark.parametrize("header", list(HEADER_FIELDS))
async def test_hostile_header_values(app, pool, fuzzer: Fuzzer, target: dict[str, str], header: bytes) -> None:
    """Raw header bytes as a server hands them on: CR/LF, NUL, UTF-8, Latin-1 above 0x7f, 1 kB of
    spaces, 64 kB. Every value on every operation in a full run; else each operation gets every
    value in turn round the list, and the first of each kind (read, write) all of them."""
    sweep = Sweep(app, pool, fuzzer, f"header {header.decode()}")
    values = list(hostile.HOSTILE_HEADER_VALUES.items())
    applies = HEADER_FIELDS[header]
    ops = _ordered([op for op in OPERATIONS if applies(op)])
    firsts = {next((op.label for op in ops if op.method == method), None) for method in ("GET", "POST")}
    for i, op in enumerate(ops):
        path = _path(op, target)
        for name, raw in values if EXAMPLES or op.label in firsts else [values[i % len(values)]]:
            body = hostile.json_bytes(_body(op, target)) if op.takes_json else b""
            value = {b"authorization": b"Bearer " + raw, b"cookie": b"accord_session=" + raw}.get(header, raw)
            # A bad credential is refused; so is a key that is not 1 to 200 printable characters
            # (Latin-1 letters are printable: "ÿþý" is a key like any other).
            refuse = (header == b"authorization" and "401" in _documented(op)) or \
                (header == b"idempotency-key" and name != "latin1-high")
            headers = [(header, value)]
            if op.path.endswith(ENDINGS) and header != b"if-match":
                headers.append((b"if-match", b'W/"0"'))  # refused as stale (412): the records stay open
            await sweep.send(f"{op.label} {header.decode()}: {name}", op.method, path, body=body,
                             headers=headers, auth=header != b"authorization", refuse=refuse)
    sweep.report()


# ---------------------------------------------------------------- what the fuzzer found, kept found


@pytest.mark.parametrize("query", [
    "/api/v1/audit?until=9999-12-31T23:59:59-01:00",  # the year 10000 in UTC
    "/api/v1/audit?since=0001-01-01T00:00:00%2B01:00",  # the year 0 in UTC
    "/api/v1/audit/export?until=0001-01-01T00:00:00%2B01:00",  # was a 200 whose stream died
    "/api/v1/cooperations/{cooperation_id}/as-of?at=0001-01-01T00:00:00%2B01:00",
    "/api/v1/projects/{project_id}/as-of?at=9999-12-31T23:59:59-23:59",
    "/api/v1/audit?cursor=9223372036854775808",  # one past the largest bigint
])
async def test_out_of_range_query_values_are_422(app, pool, fuzzer: Fuzzer, target: dict[str, str],
                                                 query: str) -> None:
    """Once 500s (asyncpg: "date value out of range", "value out of int64 range")."""
    sweep = Sweep(app, pool, fuzzer, f"out of range: {query}")
    answer = await sweep.send("out of range", "GET", query.format(**target), expect={422})
    if answer.status == 422:
        (error,) = answer.json()["detail"]
        assert error["loc"][0] == "query", error
    sweep.report()


async def test_a_nul_in_the_user_agent_is_recorded_as_a_mark(app, pool, fuzzer: Fuzzer,
                                                              target: dict[str, str]) -> None:
    """Once a 500 (or a 503 from the workflow's write) wherever the actor's user agent is stored,
    and a refused attempt that was not audited at all: PostgreSQL text cannot hold a NUL."""
    sweep = Sweep(app, pool, fuzzer, "NUL in User-Agent")
    agent = [(b"user-agent", b"fuzz\x00agent")]
    path = f"/api/v1/cooperations/{target['cooperation_id']}/negotiation-events"
    event = hostile.json_bytes({"kind": "note", "occurred_on": "2024-01-02", "summary": "with a NUL agent"})
    await sweep.send("accepted", "POST", path, body=event, headers=agent, expect={200})
    await sweep.send("refused", "POST", path, body=b'{"kind": "dinner"}', headers=agent, expect={422})
    await sweep.send("audit search", "GET", "/api/v1/audit?limit=1", headers=agent, expect={200})
    sweep.report()
    rows = await pool.fetch("SELECT outcome, user_agent FROM audit_events WHERE actor_id = $1 "
                            "ORDER BY seq DESC LIMIT 3", fuzzer.user_id)
    assert [(r["outcome"], r["user_agent"]) for r in rows] == [
        ("succeeded", "fuzz\\x00agent"), ("refused", "fuzz\\x00agent"), ("succeeded", "fuzz\\x00agent")]


async def test_a_refused_megabyte_url_is_audited_at_a_bounded_size(app, pool, fuzzer: Fuzzer) -> None:
    """The refused attempt is recorded, but not as megabytes of append-only trail."""
    sweep = Sweep(app, pool, fuzzer, "1 MB URL audited")
    huge = "x" * 1_000_000
    await sweep.send("1 MB id", "POST", f"/api/v1/cooperations/{huge}/terminate", body=b'{"reason": "r"}',
                     expect={422})
    sweep.report()
    row = await pool.fetchrow("SELECT entity_id, cooperation_id, after FROM audit_events WHERE actor_id = $1 "
                              "AND outcome = 'refused' ORDER BY seq DESC LIMIT 1", fuzzer.user_id)
    assert row["entity_id"].startswith("xxx") and len(row["entity_id"]) <= 2000, len(row["entity_id"])
    after = row["after"] if isinstance(row["after"], dict) else json.loads(row["after"])
    assert len(row["cooperation_id"]) <= 2000 and len(after["path"]) <= 2000


async def test_the_json_lines_export_keeps_one_event_a_line(app, pool, fuzzer: Fuzzer) -> None:
    """A search for text with U+2028, U+2029 or U+0085 in it is recorded in the trail; JSON leaves
    those unescaped, and a reader splitting lines as Unicode does (str.splitlines) cut the event in
    two. Once the fuzzer's searches broke test_audit_queries' export test that way."""
    sweep = Sweep(app, pool, fuzzer, "JSON Lines")
    text = hostile.query_value("line\u2028separator\u2029paragraph\x85next")
    await sweep.send("search", "GET", f"/api/v1/audit?limit=1&q={text}", expect={200})
    answer = await sweep.send("export", "GET", f"/api/v1/audit/export?format=jsonl&action=audit.searched"
                              f"&actor_id={fuzzer.user_id}", expect={200})
    sweep.report()
    lines = answer.body.decode("utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert any(e["after"].get("q") == "line\u2028separator\u2029paragraph\x85next" for e in events)


SEARCHES = [  # (path, parameter, where the found records are in the answer)
    ("/api/v1/organizations", "q", None),
    ("/api/v1/cooperations", "q", "items"),
    ("/api/v1/cooperations", "liaison_officer", "items"),
    ("/api/v1/audit", "q", "items"),
    ("/api/v1/audit", "action", "items"),
]


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [str(value)]


async def test_sql_injection_in_searches_is_only_text(app, pool, fuzzer: Fuzzer) -> None:
    """A search for ' OR 1=1 -- finds what holds that text (the corpus stored some), never everything."""
    sweep = Sweep(app, pool, fuzzer, "SQL injection searches")
    for text in ("' OR 1=1 --", "x' OR 'a'='a", "%' OR '%'='", "') OR TRUE; --", "\\' OR 1=1 --"):
        for path, parameter, key in SEARCHES:
            answer = await sweep.send(f"{path}?{parameter}={text}", "GET",
                                      f"{path}?{parameter}={hostile.query_value(text)}", expect={200})
            if answer.status != 200:
                continue
            found = answer.json()
            for item in found[key] if key else found:
                if text.lower() not in "\n".join(_strings(item)).lower():
                    sweep.problems.append(f"{path}?{parameter}={text!r} found a record without that text: "
                                          f"{json.dumps(item, ensure_ascii=False)[:300]}")
                    break
        answer = await sweep.send(f"projects?cooperation_id={text}", "GET",
                                  f"/api/v1/projects?cooperation_id={hostile.query_value(text)}", expect={422})
    sweep.report()


def test_zz_every_run_sent_requests(capsys) -> None:
    """Last in the file: every fuzz run above sent requests (a run whose strategy generated
    nothing would pass vacuously), then how much was sent (shown with -s or -rA)."""
    if not SENT:
        pytest.skip("the fuzz runs were deselected")
    assert [k for k, v in SENT.items() if v == 0] == []
    lines = [f"{sum(SENT.values())} requests in {len(SENT)} runs "
             f"({MAX_EXAMPLES} Schemathesis examples per operation and mode)"]
    schemathesis_runs = {k: v for k, v in SENT.items() if k.startswith("schemathesis ")}
    if schemathesis_runs:
        lines.append(f"schemathesis: {sum(schemathesis_runs.values())} examples over {len(schemathesis_runs)} "
                     f"operations")
    lines += [f"{k}: {v} {STATUSES.get(k, '')}" for k, v in SENT.items() if not k.startswith("schemathesis ")]
    with capsys.disabled():
        print("\nfuzz summary: " + "\n  ".join(lines))

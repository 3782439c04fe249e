"""The seed scenario in a real browser, as the people in it would click through it: a liaison
officer registers the organizations and opens the cooperation of the Mianyang Municipal
Government with Boao Zhongheng, records the inspection visit in Guangzhou, drafts both
agreements; a reviewer and a leader, each in their own browser, decide the review steps; the
officer records the signatures, creates the two projects from the milestone template, moves a
milestone to today (a reminder falls due at once), sees the notice arrive in the inbox, finds
the move in the audit trail, downloads it as CSV and switches the pages to English.

Fields are found by their labels and buttons by their names, so the test also proves every
control is labelled; the same flow over plain HTTP is tests/test_web_cooperation.py.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta
from pathlib import Path

from playwright.async_api import Locator, Page, expect

from api.services import office_today
from channels.messages import kind_phrase
from domain.reminders import NoticeRule
from tests.browser.conftest import Staff
from tests.conftest import LEGAL_DEPARTMENT, new_id

OFFICER = "王联络"
TEMPLATE_MILESTONE = "Company registration 公司注册"  # the first of the template, as it is stored
NOTICE_WAIT_S = 60  # the worker delivers a notice due now within seconds; a minute is a generous ceiling


# ---------------------------------------------------------------- finding things as a person does


def action(scope: Page | Locator, summary: str) -> Locator:
    """A folded form (<details class="action">) by the text of its <summary>."""
    page = scope if isinstance(scope, Page) else scope.page
    return scope.locator("details.action").filter(
        has=page.locator("summary").filter(has_text=re.compile(f"^{re.escape(summary)}$")))


def field(scope: Page | Locator, label: str) -> Locator:
    """The control labelled exactly `label`, with or without the required mark (" *")."""
    return scope.get_by_label(re.compile(rf"^{re.escape(label)}( \*)?$"))


async def unfold(scope: Page | Locator, summary: str, keyboard: bool = False) -> Locator:
    """Open a folded form with a click, or by focusing its summary and pressing Enter."""
    form = action(scope, summary)
    if keyboard:
        await form.locator("summary").focus()
        await form.page.keyboard.press("Enter")
    else:
        await form.locator("summary").click()
    await expect(form).to_have_attribute("open", "")
    return form


async def send(button: Locator) -> None:
    """Click a form's button and wait for the page it leads to (a redirect, or the form again):
    the message checks below must not see the page the form was on."""
    async with button.page.expect_navigation():
        await button.click()


async def says(page: Page, message: str) -> None:
    """The one-time message after a form (role="status")."""
    await expect(page.get_by_role("status").filter(has_text=message)).to_be_visible()


def agreement(page: Page, title: str) -> Locator:
    return page.get_by_role("article", name=title)


# ---------------------------------------------------------------- the steps


async def register(me: Staff, name: str, kind: str, region: str) -> None:
    """The "not in the list? register it" form of /cooperations/new."""
    page = me.page
    form = await unfold(page, me._("The organization is not in the list? Register it"))
    await field(form, me._("Name")).fill(name)
    await field(form, me._("Kind")).select_option(label=me._(kind))
    await field(form, me._("Region")).fill(region)
    await send(form.get_by_role("button", name=me._("Register"), exact=True))
    await says(page, me._("Organization registered."))


async def open_cooperation(me: Staff, title: str, government: str, company: str) -> str:
    page = me.page
    await field(page, me._("Title")).fill(title)
    await field(page, me._("Lead party (government side)")).select_option(label=government)
    partner = field(page, me._("Partner company"))
    await expect(partner.locator("option:checked")).to_have_text(company)  # chosen on registering it
    await field(page, me._("Areas of cooperation")).press_sequentially("科博会、知识产权服务、科技平台")
    await expect(field(page, me._("Liaison officer"))).to_have_value(OFFICER)  # the signed-in officer
    await field(page, me._("Started on")).fill("2017-09-01")
    await field(page, me._("Target signing date")).fill("2017-12-01")
    await send(page.get_by_role("button", name=me._("Open the cooperation")))
    await page.wait_for_url(re.compile(r"/cooperations/[0-9a-f]+$"))
    await says(page, me._("Cooperation opened."))
    return page.url.rsplit("/", 1)[1]


async def record_visit(me: Staff) -> None:
    page = me.page
    form = await unfold(page, me._("Record a meeting, inspection visit or other event"), keyboard=True)
    await field(form, me._("Kind")).select_option(label=me._("Inspection visit"))
    await field(form, me._("Date")).fill("2017-12-01")
    await field(form, me._("Place")).fill("广州 博奥中恒总部")
    await field(form, me._("Participants")).fill("刘超、韩胜键、谭刚、谢旭辉")
    await field(form, me._("Summary")).fill("市长率队考察企业总部，观看平台演示")
    await send(form.get_by_role("button", name=me._("Record"), exact=True))
    await says(page, me._("Negotiation event recorded."))
    record = page.get_by_role("region", name=me._("Negotiation record"))
    await expect(record).to_contain_text("广州 博奥中恒总部")


async def draft(me: Staff, title: str, parties: list[tuple[str | None, str, str]], kind: str) -> None:
    """Draft an agreement; `parties` rows are (organization to choose, or None to keep the prefilled
    one; signatory; title). The kind is the one the form proposes (framework first)."""
    page = me.page
    form = await unfold(page, me._("Draft an agreement"))
    await expect(field(form, me._("Kind")).locator("option:checked")).to_have_text(me._(kind))
    await field(form, me._("Title")).fill(title)
    for n, (organization, signatory, signatory_title) in enumerate(parties, start=1):
        if organization is not None:
            await field(form, me._("Party %(n)s organization", n=n)).select_option(label=organization)
        await field(form, me._("Party %(n)s signatory", n=n)).fill(signatory)
        await field(form, me._("Party %(n)s signatory's title", n=n)).fill(signatory_title)
    await send(form.get_by_role("button", name=me._("Save the draft")))
    await says(page, me._("Agreement drafted."))
    await send(agreement(page, title).get_by_role("button", name=me._("Submit for review")))
    await says(page, me._("Agreement submitted for review."))


async def decide(desk: Staff, cooperation_id: str, title: str, step: str) -> None:
    page = desk.page
    await page.goto(f"/cooperations/{cooperation_id}")
    form = await unfold(agreement(page, title), desk._("Decide the step: %(step)s", step=desk._(step)))
    await form.get_by_role("radio", name=desk._("Approve"), exact=True).check()
    await field(form, desk._("Comment (required for a rejection)")).fill("同意")
    await send(form.get_by_role("button", name=desk._("Record the decision")))
    await says(page, desk._("Review step approved."))


async def sign_all(me: Staff, cooperation_id: str, title: str, parties: int) -> None:
    """Record each party's signature, dated today (the form's default)."""
    page = me.page
    await page.goto(f"/cooperations/{cooperation_id}")
    card = agreement(page, title)
    await expect(card).to_contain_text(me._("Approved, awaiting signatures"))
    for _ in range(parties):
        form = await unfold(card, me._("Record a party's signature"))
        await expect(field(form, me._("Signed on"))).to_have_value(office_today().isoformat())
        await send(form.get_by_role("button", name=me._("Record the signature")))
        await says(page, me._("Signature recorded."))
    await expect(card).to_contain_text(me._("Signed"))


async def create_project(me: Staff, title: str, wan: str) -> str:
    page = me.page
    form = await unfold(page.get_by_role("region", name=me._("Projects")), me._("Create a project"))
    await field(form, me._("Project title")).fill(title)
    await field(form, me._("Site")).fill("绵阳高新区")
    await field(form, me._("Committed investment")).fill(wan)
    await expect(field(form, me._("Unit"))).to_have_value("wan")
    await expect(field(form, me._("Responsible officer"))).to_have_value(OFFICER)
    first_due = (office_today() + timedelta(days=30)).isoformat()  # company registration: signing + 30 days
    await expect(field(form, me._("Milestone %(n)s name", n=1))).to_have_value(TEMPLATE_MILESTONE)
    await expect(field(form, me._("Milestone %(n)s due date", n=1))).to_have_value(first_due)
    await send(form.get_by_role("button", name=me._("Create the project")))
    await page.wait_for_url(re.compile(r"/projects/[0-9a-zA-Z_-]+$"))
    await says(page, me._("Project created with its milestones."))
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    return page.url.rsplit("/", 1)[1]


async def move_to_today(me: Staff, milestone: str, shoot, axe_check) -> None:
    """Move a milestone's due date to today. A blank reason (only a space: the browser itself
    refuses an empty required field) comes back with the error next to the reason and the date
    as typed."""
    page = me.page
    today = office_today().isoformat()
    row = page.get_by_role("row").filter(has=page.get_by_role("rowheader", name=milestone))
    form = await unfold(row, me._("Move the due date"))
    await field(form, me._("New due date")).fill(today)
    await field(form, me._("Reason")).fill(" ")
    await send(form.get_by_role("button", name=me._("Move"), exact=True))

    await expect(form).to_have_attribute("open", "")  # the page came back with this form open
    reason = field(form, me._("Reason"))
    await expect(reason).to_have_attribute("aria-invalid", "true")
    await expect(reason).to_have_accessible_description(re.compile(re.escape(me._("This field is required."))))
    await expect(field(form, me._("New due date"))).to_have_value(today)
    await expect(form.get_by_role("alert")).to_be_focused()  # the error summary, read out first
    await unfold(row, me._("Mark as completed"))  # every form of the page open for axe
    await unfold(page.get_by_role("region", name=me._("Realized investment")), me._("Record money that arrived"))
    await axe_check(page)
    await shoot(page, "flow-project-move-refused")

    await reason.fill("企业注册材料提前备齐，提前办理")
    await send(form.get_by_role("button", name=me._("Move"), exact=True))
    await says(page, me._("Due date moved; reminders follow the new date."))


async def wait_for_notice(me: Staff, milestone: str, project: str) -> Locator:
    """The inbox, reloaded every second until the "due today" reminder about `milestone` of `project`
    is there (creating the project already sent one: its first notice, 30 days ahead, was due at once)."""
    page = me.page
    await page.get_by_role("navigation", name=me._("Main")).get_by_role("link", name=me._("Inbox")).click()
    await page.wait_for_url(me.url("/inbox"))
    notice = page.get_by_role("article").filter(has=page.get_by_role("heading", name=re.compile(
        f"{re.escape(milestone)}.*{re.escape(kind_phrase(NoticeRule.due, me.language))}.*{re.escape(project)}")))
    for _ in range(NOTICE_WAIT_S):
        if await notice.count():
            return notice
        await page.wait_for_timeout(1000)
        await page.reload()
    raise AssertionError(f"no notice about {milestone} of {project} in the inbox within {NOTICE_WAIT_S} s")


async def find_in_audit(me: Staff, project_id: str, new_due: str, shoot, axe_check) -> None:
    """Search the audit trail for the move, then download the search as CSV."""
    page = me.page
    await page.get_by_role("navigation", name=me._("Main")).get_by_role("link", name=me._("Audit")).click()
    await page.wait_for_url(me.url("/audit"))
    await field(page, me._("Project id")).fill(project_id)
    await field(page, me._("Action")).fill("milestone.moved")
    await field(page, me._("Action")).press("Enter")  # submits the search form
    await page.wait_for_url(re.compile(r"/audit\?"))
    rows = page.get_by_role("table").get_by_role("row").filter(has_text="milestone.moved")
    await expect(rows).to_have_count(1)
    await expect(rows).to_contain_text(me._("Milestone due date moved"))
    await expect(rows).to_contain_text(new_due)
    await axe_check(page)
    await shoot(page, "flow-audit")

    async with page.expect_download() as waiting:
        await page.get_by_role("link", name=me._("Download as CSV (every matching event)")).click()
    download = await waiting.value
    assert download.suggested_filename.startswith("accord-audit-"), "the CSV is not named after the export"
    text = Path(await download.path()).read_bytes().decode("utf-8-sig")
    events = list(csv.DictReader(io.StringIO(text, newline="")))
    assert text.startswith("seq,event_id,recorded_at"), "the CSV has no header row"
    assert [(e["action"], e["project_id"]) for e in events] == [("milestone.moved", project_id)], \
        "the CSV does not hold exactly the move"
    assert new_due in events[0]["after"], "the CSV row does not show the new due date"


# ---------------------------------------------------------------- the scenario


async def test_from_first_contact_to_a_reminder_in_the_inbox(sign_in, shoot, axe_check):
    suffix = new_id()[:6]
    government, park = f"绵阳市人民政府 {suffix}", f"绵阳高新区管委会 {suffix}"
    company = f"博奥中恒网络科技有限公司 {suffix}"
    me = await sign_in(("liaison_officer", "auditor"), display_name=OFFICER)
    reviewer = await sign_in(("reviewer",), LEGAL_DEPARTMENT, display_name="李法务")
    leader = await sign_in(("leader",), display_name="张局长")
    page = me.page

    # Organizations and the cooperation, from the "open a cooperation" page.
    await page.goto("/cooperations/new")  # no page links here yet (see the report)
    await shoot(page, "flow-cooperation-new")
    await register(me, park, "Park management committee", "四川绵阳")
    await register(me, government, "Government", "四川绵阳")
    await register(me, company, "Company", "广东广州")
    title = f"绵阳市人民政府与博奥中恒战略合作 {suffix}"
    cooperation_id = await open_cooperation(me, title, government, company)
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    await expect(page.locator("dl")).to_contain_text(me._("Negotiating"))
    await record_visit(me)
    await shoot(page, "flow-cooperation-negotiating")

    # The framework agreement: government and company.
    framework = "战略合作框架协议"
    await draft(me, framework, [(None, "孙富泉", "副市长"), (None, "陈东", "首席产品官")],
                "Strategic cooperation framework agreement")
    await decide(reviewer, cooperation_id, framework, "Legal review")
    await decide(leader, cooperation_id, framework, "Leadership approval")
    await shoot(leader.page, "flow-agreement-approved")
    await sign_all(me, cooperation_id, framework, parties=2)

    # The project investment agreement: park committee and company.
    investment = "项目投资协议"
    await draft(me, investment, [(park, "周主任", "管委会主任"), (None, "谢旭辉", "董事长")],
                "Project investment agreement")
    await expect(agreement(page, investment)).to_contain_text(me._("In review"))
    await decide(reviewer, cooperation_id, investment, "Legal review")
    await decide(leader, cooperation_id, investment, "Leadership approval")
    await sign_all(me, cooperation_id, investment, parties=2)

    await unfold(page.get_by_role("region", name=me._("Projects")), me._("Create a project"))
    await unfold(page, me._("Draft an agreement"))
    await axe_check(page)  # the cooperation page with its forms open
    await page.reload()  # folded again

    # The two projects of the seed, from the milestone template, committed in 万元.
    headquarters = f"博奥中恒西南区域总部 {suffix}"
    await create_project(me, headquarters, "5,000")
    await expect(page.get_by_text("5,000.00 万元")).to_be_visible()
    await page.get_by_role("link", name=title).click()  # the breadcrumb back to the cooperation
    institute = f"中国科技城（绵阳）知识产权研究院 {suffix}"
    project_id = await create_project(me, institute, "2,000")
    await shoot(page, "flow-project")

    # A milestone moved to today: its reminder is due now.
    await move_to_today(me, me._("Company registration"), shoot, axe_check)  # named in the user's language
    notice = await wait_for_notice(me, TEMPLATE_MILESTONE, institute)  # the notice, by its stored name
    await expect(notice.get_by_role("link", name=institute)).to_be_visible()
    await notice.get_by_text(me._("Show the message")).click()
    await expect(notice).to_contain_text(institute)
    await axe_check(page)
    await shoot(page, "flow-inbox")

    await find_in_audit(me, project_id, office_today().isoformat(), shoot, axe_check)

    # The same pages in English, after the switch in the header.
    await page.goto(f"/cooperations/{cooperation_id}")
    await page.get_by_role("button", name="English").click()
    await expect(page.locator("html")).to_have_attribute("lang", "en")
    await page.wait_for_url(me.url(f"/cooperations/{cooperation_id}"))
    await expect(page.get_by_role("heading", level=2, name="Agreements")).to_be_visible()
    await expect(page.locator("dl")).to_contain_text("In delivery")
    await expect(agreement(page, framework)).to_contain_text("Strategic cooperation framework agreement")
    await axe_check(page)
    await shoot(page, "flow-cooperation")
    await page.get_by_role("link", name=institute).click()
    await expect(page.get_by_role("heading", level=2, name="Milestones")).to_be_visible()
    await shoot(page, "flow-project")
    await page.goto("/inbox")
    await shoot(page, "flow-inbox")

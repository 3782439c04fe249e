"""What a reminder says: subject and plain-text body, in the recipient's language.

One renderer serves every channel (the e-mail body, the webhook `text`, the
liaison officer's failure notice), so a person sees the same words wherever a
reminder reaches them. Chinese is the default; English exists for foreign
partners of a cooperation agreement.

Every message ends with a "why you got this" block. Reminders are driven by
policies and a holiday table that offices edit; when somebody asks why a
notice arrived on a given day (or twice, or late), the answer must be in the
message itself: which rule, which version of the policy and of the calendar,
which version of the due date, and the notice key the delivery log is keyed on.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import BaseModel

from domain.reminders import Notice, NoticeRule, RecipientRole

Language = Literal["zh", "en"]

ERROR_TEXT_LIMIT = 500
"""Channel errors can be long (stack-like SMTP transcripts); the liaison officer needs the gist."""


class Recipient(BaseModel):
    """A person resolved from a `RecipientRole` at delivery time."""

    user_id: str
    name: str
    email: str | None = None
    language: Language = "zh"


class NoticeMessage(BaseModel):
    """One notice addressed to one person, ready for any channel."""

    delivery_id: str
    """Stable across retries of the same delivery: receivers use it to drop duplicates."""
    notice: Notice
    project_title: str
    recipient: Recipient
    link: str | None = None


class Rendered(BaseModel):
    subject: str
    body: str


# ---------------------------------------------------------------- vocabulary

_ROLE_NAMES: dict[Language, dict[RecipientRole, str]] = {
    "zh": {
        RecipientRole.liaison_officer: "联络员",
        RecipientRole.owner: "里程碑负责人",
        RecipientRole.department_leader: "部门负责人",
        RecipientRole.leadership_office: "领导办公室",
    },
    "en": {
        RecipientRole.liaison_officer: "liaison officer",
        RecipientRole.owner: "milestone owner",
        RecipientRole.department_leader: "department leader",
        RecipientRole.leadership_office: "leadership office",
    },
}

_CHANNEL_NAMES: dict[Language, dict[str, str]] = {
    "zh": {"email": "电子邮件", "webhook": "群机器人（Webhook）"},
    "en": {"email": "e-mail", "webhook": "chat robot (webhook)"},
}

_ZH_WEEKDAYS = "一二三四五六日"
# Fixed names rather than strftime("%a"), which follows the process locale.
_EN_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

_NUMBERED_KIND = re.compile(r"^(before|overdue)_(\d+)$")
_ESCALATION_PREFIX = "escalation_"


def _role_name(role: str, language: Language) -> str:
    try:
        return _ROLE_NAMES[language][RecipientRole(role)]
    except ValueError:
        # A role added to the domain before this table learned its name: show the raw value.
        return role


def _channel_name(channel: str, language: Language) -> str:
    return _CHANNEL_NAMES[language].get(channel, channel)


def _format_date(day: date, language: Language) -> str:
    if language == "zh":
        return f"{day.year}年{day.month}月{day.day}日（星期{_ZH_WEEKDAYS[day.weekday()]}）"
    return f"{day.isoformat()} ({_EN_WEEKDAYS[day.weekday()]})"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def kind_phrase(kind: str, language: Language) -> str:
    """The situation a notice of `kind` announces, e.g. "距截止日还有30个工作日" or "14 days overdue"."""
    zh = language == "zh"
    numbered = _NUMBERED_KIND.match(kind)
    if numbered:
        n = int(numbered[2])
        if numbered[1] == "before":
            return f"距截止日还有{n}个工作日" if zh else f"{_plural(n, 'working day')} left until the due date"
        return f"已逾期{n}天" if zh else f"{_plural(n, 'day')} overdue"
    if kind == NoticeRule.due.value:
        return "今天到期" if zh else "due today"
    if kind.startswith(_ESCALATION_PREFIX):
        role = _role_name(kind.removeprefix(_ESCALATION_PREFIX), language)
        return f"逾期未完成，已升级至{role}" if zh else f"overdue, escalated to the {role}"
    if kind == NoticeRule.catch_up.value or kind.startswith(f"{NoticeRule.catch_up.value}:"):
        return "补发提醒" if zh else "catch-up reminder"
    return kind


# ---------------------------------------------------------------- reminders


def render(message: NoticeMessage) -> Rendered:
    """The subject and plain-text body of one reminder, in the recipient's language."""
    notice, language = message.notice, message.recipient.language
    milestone, project = notice.milestone_name, message.project_title
    phrase = kind_phrase(notice.kind, language)
    # A catch-up stands for the latest notice it replaces: that one describes where the milestone is now.
    latest = kind_phrase(notice.replaces[-1], language) if notice.replaces else None
    missed = len(notice.replaces)

    if language == "zh":
        subject, headline = _zh_headline(notice, milestone, project, phrase, latest, missed)
    else:
        subject, headline = _en_headline(notice, milestone, project, phrase, latest, missed)

    lines = [
        f"{message.recipient.name}，您好：" if language == "zh" else f"Dear {message.recipient.name},",
        "",
        headline,
        "",
        *_facts(notice, project, message.link, language),
        *_replaced_block(notice, language),
        *_estimated_note(notice, language),
        "",
        *_provenance(notice, message.delivery_id, language),
    ]
    return Rendered(subject=subject, body="\n".join(lines) + "\n")


def _zh_headline(notice: Notice, milestone: str, project: str, phrase: str, latest: str | None,
                 missed: int) -> tuple[str, str]:
    match notice.rule:
        case NoticeRule.before:
            tag, headline = "里程碑提醒", f"里程碑「{milestone}」{phrase}，请按计划推进。"
        case NoticeRule.due:
            tag, headline = "今天到期", f"里程碑「{milestone}」今天到期，请及时办结并在系统中标记完成。"
        case NoticeRule.overdue:
            tag, headline = "逾期提醒", f"里程碑「{milestone}」{phrase}，请尽快办结，或按程序申请调整截止日期。"
        case NoticeRule.escalation:
            tag, headline = "逾期督办", f"里程碑「{milestone}」{phrase}督办，请督促责任单位尽快办结。"
        case NoticeRule.catch_up:
            tag = "补发提醒"
            phrase = f"{latest}（合并{missed}条错过的提醒）" if latest else f"合并{missed}条错过的提醒"
            headline = f"系统有{missed}条提醒未能按时发出，现合并为本条补发提醒。"
            if latest:
                headline += f"里程碑「{milestone}」当前情况：{latest}。"
        case _:
            tag, headline = "提醒", f"里程碑「{milestone}」：{notice.rule_text}"
    return f"【{tag}】{milestone}：{phrase} · {project}", headline


def _en_headline(notice: Notice, milestone: str, project: str, phrase: str, latest: str | None,
                 missed: int) -> tuple[str, str]:
    match notice.rule:
        case NoticeRule.before:
            headline = f"Milestone \"{milestone}\": {phrase}. Please keep it on schedule."
        case NoticeRule.due:
            headline = f"Milestone \"{milestone}\" is due today. Please complete it and mark it done."
        case NoticeRule.overdue:
            headline = (f"Milestone \"{milestone}\" is {phrase}. Please complete it soon, or request a new due date "
                        "through the usual procedure.")
        case NoticeRule.escalation:
            headline = f"Milestone \"{milestone}\" is {phrase}. Please follow up with the responsible unit."
        case NoticeRule.catch_up:
            replaced = f"catch-up for {_plural(missed, 'missed notice')}"
            phrase = f"{latest} ({replaced})" if latest else replaced
            headline = f"{_plural(missed, 'reminder')} could not be sent on time; this catch-up reminder replaces them."
            if latest:
                headline += f" Milestone \"{milestone}\" is now: {latest}."
        case _:
            headline = f"Milestone \"{milestone}\": {notice.rule_text}"
    return f"[Accord] {milestone}: {phrase} · {project}", headline


def _facts(notice: Notice, project: str, link: str | None, language: Language) -> list[str]:
    due = _format_date(notice.due_date, language)
    if language == "zh":
        lines = [f"项目：{project}", f"里程碑：{notice.milestone_name}", f"截止日期：{due}"]
        if link:
            lines.append(f"查看详情：{link}")
    else:
        lines = [f"Project: {project}", f"Milestone: {notice.milestone_name}", f"Due date: {due}"]
        if link:
            lines.append(f"Details: {link}")
    return lines


def _replaced_block(notice: Notice, language: Language) -> list[str]:
    """The notices this one stands in for: missed ones (catch-up) or same-day ones (a holiday merged them)."""
    if not notice.replaces:
        return []
    if notice.rule == NoticeRule.catch_up:
        title = ("本条代替以下未能按时发出的提醒：" if language == "zh"
                 else "This reminder replaces these missed notices:")
    else:
        title = ("以下同一天的提醒已合并到本条：" if language == "zh"
                 else "These notices fell on the same day and are merged into this one:")
    return ["", title, *(f"  · {kind_phrase(kind, language)}" for kind in notice.replaces)]


def _estimated_note(notice: Notice, language: Language) -> list[str]:
    if not notice.estimated:
        return []
    if language == "zh":
        return ["", "注意：相关年份的法定节假日安排尚未正式公布，工作日暂按周一至周五计算，"
                    "提醒日期可能随官方安排调整。"]
    return ["", "Note: the official public holidays for the year involved are not published yet; working days "
                "are counted as Monday to Friday for now, so reminder dates may still shift."]


def _provenance(notice: Notice, delivery_id: str, language: Language) -> list[str]:
    role = _role_name(notice.recipient.value, language)
    if language == "zh":
        return [
            "—— 为什么收到这条提醒 ——",
            f"接收角色：{role}",
            f"提醒规则：{notice.rule_text}",
            f"提醒策略：{notice.policy_id}（第{notice.policy_version}版）",
            f"工作日历：{notice.calendar_name}（第{notice.calendar_version}版）",
            f"截止日期版本：v{notice.due_version}（截止日期每调整一次加一）",
            f"提醒编号：{notice.key}",
            f"投递编号：{delivery_id}",
        ]
    return [
        "-- Why you got this --",
        f"Your role: {role}",
        f"Rule: {notice.rule_text}",
        f"Reminder policy: {notice.policy_id}, version {notice.policy_version}",
        f"Working-day calendar: {notice.calendar_name}, version {notice.calendar_version}",
        f"Due-date version: v{notice.due_version} (goes up each time the due date moves)",
        f"Notice key: {notice.key}",
        f"Delivery id: {delivery_id}",
    ]


# ---------------------------------------------------------------- failures


def render_failed_delivery(notice: Notice, project_title: str, channel: str, recipient_name: str, error: str,
                           language: Language = "zh") -> Rendered:
    """The message for the liaison officer's inbox when a channel stayed down and a reminder never arrived.

    Automation has given up at this point, so the text asks a person to pass
    the reminder on by other means and to check the address or robot URL.
    """
    channel_name = _channel_name(channel, language)
    phrase = kind_phrase(notice.replaces[-1] if notice.rule == NoticeRule.catch_up and notice.replaces
                          else notice.kind, language)
    error = error if len(error) <= ERROR_TEXT_LIMIT else error[:ERROR_TEXT_LIMIT] + "…"
    due = _format_date(notice.due_date, language)
    if language == "zh":
        subject = f"【投递失败】{recipient_name}未收到「{notice.milestone_name}」的提醒 · {project_title}"
        lines = [
            "联络员您好：",
            "",
            f"以下提醒经多次重试，仍未能通过{channel_name}送达{recipient_name}：",
            "",
            f"项目：{project_title}",
            f"里程碑：{notice.milestone_name}",
            f"截止日期：{due}",
            f"提醒内容：{phrase}",
            f"渠道：{channel_name}",
            f"最后一次错误：{error}",
            "",
            f"请通过电话或其他方式转告{recipient_name}，并核对其联系方式或该渠道的配置。",
            "",
            f"提醒编号：{notice.key}",
        ]
    else:
        subject = f"[Accord] Not delivered: {notice.milestone_name} reminder for {recipient_name} · {project_title}"
        lines = [
            "Dear liaison officer,",
            "",
            f"After repeated attempts, this reminder could not reach {recipient_name} by {channel_name}:",
            "",
            f"Project: {project_title}",
            f"Milestone: {notice.milestone_name}",
            f"Due date: {due}",
            f"Reminder: {phrase}",
            f"Channel: {channel_name}",
            f"Last error: {error}",
            "",
            f"Please pass it on to {recipient_name} by phone or other means, and check their contact details "
            "or the channel's settings.",
            "",
            f"Notice key: {notice.key}",
        ]
    return Rendered(subject=subject, body="\n".join(lines) + "\n")


# ---------------------------------------------------------------- webhooks


def webhook_payload(message: NoticeMessage) -> dict[str, Any]:
    """The JSON body for chat robots: the facts as fields, plus the rendered text for robots that only post text.

    Plain types only (str, int, bool, None), so `json.dumps` needs no hooks and
    the receiver needs no schema beyond this list.
    """
    notice = message.notice
    rendered = render(message)
    return {
        "delivery_id": message.delivery_id,
        "notice_key": notice.key,
        "project_id": notice.project_id,
        "project_title": message.project_title,
        "milestone_id": notice.milestone_id,
        "milestone_name": notice.milestone_name,
        "due_date": notice.due_date.isoformat(),
        "due_version": notice.due_version,
        "kind": notice.kind,
        "rule": notice.rule.value,
        "recipient_role": notice.recipient.value,
        "recipient_user_id": message.recipient.user_id,
        "recipient_name": message.recipient.name,
        "language": message.recipient.language,
        "estimated": notice.estimated,
        "link": message.link,
        "title": rendered.subject,
        "text": rendered.body,
    }

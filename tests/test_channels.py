"""Reminder delivery channels against real servers: an SMTP sink and an HTTP receiver on 127.0.0.1.

Nothing is mocked. Mail goes through aiosmtplib to aiosmtpd (`runtime.mail_sink`)
and is parsed back from the bytes the server received; webhooks go through
httpx to a small HTTP server started here, which checks signatures with the
same `verify` a real receiver would use. No test needs PostgreSQL or Temporal.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import icalendar
import pytest
from aiosmtpd.controller import Controller
from pydantic import ValidationError

from channels import ChannelError
from channels.email import SmtpSettings, build_email, message_id_for, send_email
from channels.ics import calendar_bytes, milestone_event
from channels.messages import NoticeMessage, Recipient, render, render_failed_delivery, webhook_payload
from channels.webhook import UnsafeUrl, check_url, post_webhook, sign, verify
from domain.audit import OFFICE_TZ
from domain.reminders import Notice, NoticeRule, RecipientRole
from runtime.mail_sink import MailSink, free_port

STAMP = datetime(2025, 4, 1, 9, tzinfo=OFFICE_TZ)
DUE = date(2025, 4, 30)
PROJECT = "苏州工业园区合作项目"
MILESTONE = "完成可行性研究报告"
SECRET = "webhook-shared-secret"

# kind -> rule, rule text (as the schedule writes it), recipient role
RULES = {
    "before_30": (NoticeRule.before, "30 working days before the due date", RecipientRole.owner),
    "due": (NoticeRule.due, "on the due date", RecipientRole.owner),
    "overdue_14": (NoticeRule.overdue, "every 7 days while overdue (14 days)", RecipientRole.owner),
    "escalation_department_leader": (NoticeRule.escalation,
                                     "3 working days overdue: escalate to department_leader",
                                     RecipientRole.department_leader),
    "escalation_leadership_office": (NoticeRule.escalation,
                                     "10 working days overdue: escalate to leadership_office",
                                     RecipientRole.leadership_office),
    "catch_up": (NoticeRule.catch_up,
                 "catch-up for 3 missed notices, the last one: on the due date", RecipientRole.owner),
}


def make_notice(kind: str = "before_30", *, estimated: bool = False) -> Notice:
    rule, rule_text, recipient = RULES[kind]
    replaces = ("before_7", "before_1", "due") if kind == "catch_up" else ()
    key_kind = "catch_up:due" if kind == "catch_up" else kind
    return Notice(
        key=f"p-suzhou/m-feasibility/v2/{key_kind}", project_id="p-suzhou", milestone_id="m-feasibility",
        milestone_name=MILESTONE, due_date=DUE, due_version=2, kind=kind, rule=rule, rule_text=rule_text,
        nominal_day=DUE, fire_at=STAMP, recipient=recipient, policy_id="office-default", policy_version=4,
        calendar_name="China mainland", calendar_version=7, estimated=estimated, replaces=replaces,
    )


def make_message(kind: str = "before_30", *, language: str = "zh", delivery_id: str = "delivery-1",
                 estimated: bool = False) -> NoticeMessage:
    recipient = (Recipient(user_id="u-zhang", name="张三", email="zhang.san@example.cn")
                 if language == "zh" else
                 Recipient(user_id="u-alice", name="Alice Chen", email="alice@example.com", language="en"))
    return NoticeMessage(delivery_id=delivery_id, notice=make_notice(kind, estimated=estimated),
                         project_title=PROJECT, recipient=recipient, link="https://accord.example/projects/p-suzhou")


# ---------------------------------------------------------------- render


ZH_WORDS = {
    "before_30": ["距截止日还有30个工作日"],
    "due": ["今天到期"],
    "overdue_14": ["已逾期14天"],
    "escalation_department_leader": ["部门负责人", "升级"],
    "escalation_leadership_office": ["领导办公室", "升级"],
    "catch_up": ["补发提醒", "3条"],
}
EN_WORDS = {
    "before_30": ["30 working days left"],
    "due": ["due today"],
    "overdue_14": ["14 days overdue"],
    "escalation_department_leader": ["escalated", "department leader"],
    "escalation_leadership_office": ["escalated", "leadership office"],
    "catch_up": ["catch-up", "3 missed notices"],
}


@pytest.mark.parametrize("kind", list(RULES))
def test_render_chinese(kind: str) -> None:
    rendered = render(make_message(kind))
    for word in ZH_WORDS[kind]:
        assert word in rendered.subject
        assert word in rendered.body
    assert PROJECT in rendered.subject
    body = rendered.body
    assert body.startswith("张三，您好：")
    for fact in (PROJECT, MILESTONE, "2025年4月30日（星期三）", "https://accord.example/projects/p-suzhou"):
        assert fact in body
    # The provenance block: rule, policy and calendar with versions, due-date version, key.
    for fact in (RULES[kind][1], "office-default（第4版）", "China mainland（第7版）", "v2",
                 make_notice(kind).key, "delivery-1"):
        assert fact in body


@pytest.mark.parametrize("kind", list(RULES))
def test_render_english(kind: str) -> None:
    rendered = render(make_message(kind, language="en"))
    for word in EN_WORDS[kind]:
        assert word in rendered.subject
        assert word in rendered.body
    body = rendered.body
    assert body.startswith("Dear Alice Chen,")
    assert "2025-04-30 (Wed)" in body
    for fact in (RULES[kind][1], "office-default, version 4", "China mainland, version 7", "v2",
                 make_notice(kind).key):
        assert fact in body
    assert "距截止日" not in body


def test_render_catch_up_lists_the_missed_notices() -> None:
    body = render(make_message("catch_up")).body
    for missed in ("距截止日还有7个工作日", "距截止日还有1个工作日", "今天到期"):
        assert missed in body
    en = render(make_message("catch_up", language="en")).body
    for missed in ("7 working days left", "1 working day left", "due today"):
        assert missed in en


def test_render_estimated_dates_carry_a_warning() -> None:
    assert "尚未正式公布" in render(make_message(estimated=True)).body
    assert "尚未正式公布" not in render(make_message(estimated=False)).body
    assert "not published yet" in render(make_message(language="en", estimated=True)).body


def test_render_without_link() -> None:
    message = make_message().model_copy(update={"link": None})
    body = render(message).body
    assert "查看详情" not in body
    assert MILESTONE in body


def test_failed_delivery_notice() -> None:
    notice = make_notice("overdue_14")
    zh = render_failed_delivery(notice, PROJECT, "email", "张三", "SMTP mail.example.cn:25 answered 550 no such user")
    assert "投递失败" in zh.subject
    assert "张三" in zh.subject
    for fact in (PROJECT, MILESTONE, "已逾期14天", "电子邮件", "550 no such user", notice.key):
        assert fact in zh.body
    en = render_failed_delivery(notice, PROJECT, "webhook", "Alice Chen", "timed out", language="en")
    assert "Not delivered" in en.subject
    for fact in ("Alice Chen", "14 days overdue", "chat robot", "timed out", notice.key):
        assert fact in en.body


def test_failed_delivery_truncates_long_errors() -> None:
    rendered = render_failed_delivery(make_notice(), PROJECT, "email", "张三", "x" * 5000)
    assert len(rendered.body) < 2000


def test_webhook_payload_is_plain_json() -> None:
    message = make_message("overdue_14")
    payload = webhook_payload(message)
    assert json.loads(json.dumps(payload)) == payload
    assert all(isinstance(value, str | int | bool | None) for value in payload.values())
    assert payload["delivery_id"] == "delivery-1"
    assert payload["notice_key"] == "p-suzhou/m-feasibility/v2/overdue_14"
    assert payload["project_id"] == "p-suzhou"
    assert payload["milestone_name"] == MILESTONE
    assert payload["due_date"] == "2025-04-30"
    assert payload["kind"] == "overdue_14"
    assert payload["rule"] == "overdue"
    assert payload["recipient_role"] == "owner"
    assert payload["text"] == render(message).body


# ---------------------------------------------------------------- iCalendar


def test_calendar_bytes_round_trip() -> None:
    events = [
        milestone_event(project_id="p-suzhou", milestone_id="m-feasibility", project_title=PROJECT,
                        milestone_name=MILESTONE, due_date=DUE, due_version=2, stamp=STAMP),
        milestone_event(project_id="p-suzhou", milestone_id="m-signing", project_title=PROJECT,
                        milestone_name="签署合作协议", due_date=date(2025, 6, 3), due_version=0, stamp=STAMP,
                        description="https://accord.example/projects/p-suzhou"),
    ]
    data = calendar_bytes("苏州项目里程碑", events)
    assert data.replace(b"\r\n", b"").count(b"\n") == 0  # every line ends in CRLF

    parsed = icalendar.Calendar.from_ical(data)
    assert str(parsed["version"]) == "2.0"
    assert str(parsed["prodid"]) == "-//Accord//Milestones//ZH"
    assert str(parsed["x-wr-calname"]) == "苏州项目里程碑"
    assert "method" not in parsed
    found = {str(event["uid"]): event for event in parsed.walk("VEVENT")}
    assert sorted(found) == ["p-suzhou.m-feasibility@accord", "p-suzhou.m-signing@accord"]
    first = found["p-suzhou.m-feasibility@accord"]
    assert first.decoded("dtstart") == DUE
    assert first.decoded("dtend") == date(2025, 5, 1)
    assert int(first["sequence"]) == 2
    assert first.decoded("dtstamp") == STAMP
    assert str(first["summary"]) == f"{MILESTONE} · {PROJECT}"
    assert str(found["p-suzhou.m-signing@accord"]["description"]) == "https://accord.example/projects/p-suzhou"

    again = calendar_bytes("苏州项目里程碑", events)
    assert again == data
    assert b"METHOD:PUBLISH" in calendar_bytes("x", events, method="PUBLISH")


def test_moved_due_date_keeps_the_uid() -> None:
    def event(due: date, version: int) -> icalendar.Event:
        return milestone_event(project_id="p", milestone_id="m", project_title="P", milestone_name="M",
                               due_date=due, due_version=version, stamp=STAMP)

    before, after = event(DUE, 0), event(DUE + timedelta(days=14), 1)
    assert before["uid"] == after["uid"]
    assert int(after["sequence"]) > int(before["sequence"])


# ---------------------------------------------------------------- e-mail


@pytest.fixture
def mail_sink(tmp_path: Path) -> Iterator[MailSink]:
    with MailSink(tmp_path / "mail", port=0) as sink:
        yield sink


def smtp_for(port: int, timeout: float = 5.0) -> SmtpSettings:
    return SmtpSettings(host="127.0.0.1", port=port, timeout=timeout)


def received(sink: MailSink, index: int = -1) -> email.message.EmailMessage:
    message = email.message_from_bytes(sink.messages[index], policy=email.policy.default)
    assert isinstance(message, email.message.EmailMessage)
    return message


async def test_email_reaches_the_server(mail_sink: MailSink, tmp_path: Path) -> None:
    message = make_message("before_30")
    settings = smtp_for(mail_sink.port)
    await send_email(build_email(message, settings, STAMP), settings)

    assert len(mail_sink.messages) == 1
    got = received(mail_sink)
    (to,) = got["To"].addresses
    assert to.display_name == "张三"
    assert to.addr_spec == "zhang.san@example.cn"
    assert str(got["From"]) == "Accord <accord@localhost>"
    assert got["Subject"] == render(message).subject
    assert "距截止日还有30个工作日" in got["Subject"]
    assert got["Message-ID"] == message_id_for("delivery-1")
    assert got["Content-Language"] == "zh-CN"
    assert got["X-Accord-Notice-Key"] == "p-suzhou/m-feasibility/v2/before_30"
    assert got["Date"].datetime == STAMP

    body = got.get_body(preferencelist=("plain",))
    assert body is not None
    text = body.get_content()
    assert PROJECT in text
    assert "office-default（第4版）" in text
    assert "China mainland（第7版）" in text

    attachments = [part for part in got.iter_attachments() if part.get_filename() == "milestone.ics"]
    assert len(attachments) == 1
    ics = attachments[0]
    assert ics.get_content_type() == "text/calendar"
    assert ics.get_param("method") == "PUBLISH"
    calendar = icalendar.Calendar.from_ical(ics.get_payload(decode=True))
    (event,) = calendar.walk("VEVENT")
    assert str(event["uid"]) == "p-suzhou.m-feasibility@accord"
    assert event.decoded("dtstart") == DUE
    assert int(event["sequence"]) == 2

    # The sink keeps a file per message as well.
    files = list((tmp_path / "mail").glob("*.eml"))
    assert len(files) == 1
    assert files[0].read_bytes() == mail_sink.messages[0]


async def test_english_recipient_gets_english_mail(mail_sink: MailSink) -> None:
    message = make_message("overdue_14", language="en")
    settings = smtp_for(mail_sink.port)
    await send_email(build_email(message, settings, STAMP), settings)

    got = received(mail_sink)
    assert got["Subject"].startswith("[Accord]")
    assert "14 days overdue" in got["Subject"]
    assert got["Content-Language"] == "en"
    assert got["To"].addresses[0].display_name == "Alice Chen"
    body = got.get_body(preferencelist=("plain",))
    assert body is not None
    assert "Why you got this" in body.get_content()


async def test_resending_a_delivery_keeps_the_message_id(mail_sink: MailSink) -> None:
    settings = smtp_for(mail_sink.port)
    message = make_message("due")
    await send_email(build_email(message, settings, STAMP), settings)
    await send_email(build_email(message, settings, STAMP + timedelta(minutes=5)), settings)
    other = make_message("due", delivery_id="delivery-2")
    await send_email(build_email(other, settings, STAMP), settings)

    ids = [received(mail_sink, i)["Message-ID"] for i in range(3)]
    assert ids[0] == ids[1] == message_id_for("delivery-1")
    assert ids[2] == message_id_for("delivery-2")
    assert ids[2] != ids[0]


def test_message_id_is_deterministic() -> None:
    assert message_id_for("d-1") == message_id_for("d-1")
    assert message_id_for("d-1") != message_id_for("d-2")
    assert message_id_for("d-1", "mail.gov.example").endswith("@mail.gov.example>")
    assert message_id_for("d-1").startswith("<")


def test_email_needs_an_address() -> None:
    message = make_message().model_copy(update={"recipient": Recipient(user_id="u-li", name="李四")})
    with pytest.raises(ValueError):
        build_email(message, SmtpSettings(), STAMP)


def test_settings_refuse_two_tls_modes() -> None:
    with pytest.raises(ValidationError):
        SmtpSettings(starttls=True, use_tls=True)


def test_settings_do_not_show_the_password() -> None:
    settings = SmtpSettings(username="accord", password="s3cret-pass")
    assert "s3cret-pass" not in repr(settings)
    assert "s3cret-pass" not in str(settings.model_dump())


async def test_smtp_down_is_a_transient_error() -> None:
    settings = smtp_for(free_port(), timeout=3.0)
    with pytest.raises(ChannelError) as caught:
        await send_email(build_email(make_message(), settings, STAMP), settings)
    assert caught.value.permanent is False


class RefuseRecipients:
    """An aiosmtpd handler that answers every RCPT TO with a fixed reply."""

    def __init__(self, reply: str) -> None:
        self.reply = reply

    async def handle_RCPT(self, server: object, session: object, envelope: object, address: str,
                          rcpt_options: list[str]) -> str:
        return self.reply


@pytest.mark.parametrize(("reply", "permanent"), [
    ("550 5.1.1 no such user here", True),
    ("451 4.7.1 greylisted, try again later", False),
])
async def test_refused_recipient(reply: str, permanent: bool) -> None:
    port = free_port()
    controller = Controller(RefuseRecipients(reply), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        settings = smtp_for(port)
        with pytest.raises(ChannelError) as caught:
            await send_email(build_email(make_message(), settings, STAMP), settings)
    finally:
        controller.stop()
    assert caught.value.permanent is permanent
    assert reply.split()[0] in str(caught.value)


def test_mail_sink_keeps_the_newest_thousand(tmp_path: Path) -> None:
    sink = MailSink(tmp_path / "many", port=0)
    sink.folder.mkdir()
    for n in range(1005):
        sink.store(b"Subject: %d\r\n\r\nbody\r\n" % n)
    assert len(sink.messages) == 1000
    assert sink.messages[0].startswith(b"Subject: 5\r\n")
    assert len(list(sink.folder.glob("*.eml"))) == 1005


# ---------------------------------------------------------------- webhooks


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool


@dataclass
class Receiver:
    """A minimal HTTP/1.1 server: checks the signature, then answers by path."""

    secret: str
    base: str = ""
    requests: list[Request] = field(default_factory=list)

    ROUTES = {
        "/hook": "200 OK",
        "/broken": "500 Internal Server Error",
        "/busy": "429 Too Many Requests",
        "/gone": "404 Not Found",
        "/moved": "302 Found",
    }

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode("latin-1").split(" ", 2)
            headers = {}
            while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                headers[name.strip().lower()] = value.strip()
            body = await reader.readexactly(int(headers.get("content-length", "0")))
            ok = verify(self.secret, headers.get("x-accord-timestamp", ""), body,
                        headers.get("x-accord-signature", ""), now=datetime.now(UTC))
            self.requests.append(Request(method, path, headers, body, ok))
            status = self.ROUTES.get(path, "404 Not Found") if ok else "401 Unauthorized"
            location = f"Location: {self.base}/hook\r\n" if status.startswith("302") else ""
            writer.write(f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n{location}\r\n".encode())
            await writer.drain()
        finally:
            writer.close()


@asynccontextmanager
async def http_receiver(secret: str = SECRET) -> AsyncIterator[Receiver]:
    receiver = Receiver(secret)
    server = await asyncio.start_server(receiver.handle, "127.0.0.1", 0)
    receiver.base = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        yield receiver
    finally:
        server.close()
        await server.wait_closed()


async def test_webhook_delivers_signed_json() -> None:
    message = make_message("overdue_14")
    payload = webhook_payload(message)
    async with http_receiver() as receiver:
        await post_webhook(f"{receiver.base}/hook", SECRET, payload, "delivery-1", allow_private=True)
        await post_webhook(f"{receiver.base}/hook", SECRET, payload, "delivery-1", allow_private=True)

    assert len(receiver.requests) == 2
    first, second = receiver.requests
    assert first.method == "POST"
    assert first.signature_ok
    assert first.headers["content-type"] == "application/json"
    assert first.headers["x-accord-signature"].startswith("sha256=")
    assert json.loads(first.body) == payload
    assert MILESTONE.encode("utf-8") in first.body  # UTF-8 as is, not \u escapes
    # Retries carry the same delivery id, for the receiver to drop duplicates.
    assert first.headers["x-accord-delivery"] == second.headers["x-accord-delivery"] == "delivery-1"


async def test_webhook_to_a_private_address_is_refused_before_sending() -> None:
    async with http_receiver() as receiver:
        with pytest.raises(ChannelError) as caught:
            await post_webhook(f"{receiver.base}/hook", SECRET, {"x": 1}, "delivery-1")
    assert caught.value.permanent is True
    assert "loopback" in str(caught.value)
    assert receiver.requests == []


async def test_webhook_with_the_wrong_secret_is_rejected_by_the_receiver() -> None:
    async with http_receiver() as receiver:
        with pytest.raises(ChannelError) as caught:
            await post_webhook(f"{receiver.base}/hook", "not-the-secret", {"x": 1}, "d", allow_private=True)
    assert caught.value.permanent is True
    assert "401" in str(caught.value)
    assert [r.signature_ok for r in receiver.requests] == [False]


async def test_webhook_replayed_later_is_rejected_by_the_receiver() -> None:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    async with http_receiver() as receiver:
        with pytest.raises(ChannelError):
            await post_webhook(f"{receiver.base}/hook", SECRET, {"x": 1}, "d", allow_private=True, now=an_hour_ago)
    assert [r.signature_ok for r in receiver.requests] == [False]


@pytest.mark.parametrize(("path", "permanent"), [("/broken", False), ("/busy", False), ("/gone", True)])
async def test_webhook_status_codes(path: str, permanent: bool) -> None:
    async with http_receiver() as receiver:
        with pytest.raises(ChannelError) as caught:
            await post_webhook(f"{receiver.base}{path}", SECRET, {"x": 1}, "d", allow_private=True)
    assert caught.value.permanent is permanent
    assert len(receiver.requests) == 1


async def test_webhook_redirect_is_not_followed() -> None:
    async with http_receiver() as receiver:
        with pytest.raises(ChannelError) as caught:
            await post_webhook(f"{receiver.base}/moved", SECRET, {"x": 1}, "d", allow_private=True)
    assert "302" in str(caught.value)
    assert [r.path for r in receiver.requests] == ["/moved"]


async def test_webhook_receiver_down_is_transient() -> None:
    with pytest.raises(ChannelError) as caught:
        await post_webhook(f"http://127.0.0.1:{free_port()}/hook", SECRET, {"x": 1}, "d", allow_private=True,
                           timeout=3.0)
    assert caught.value.permanent is False


async def test_webhook_error_does_not_show_the_query_string() -> None:
    with pytest.raises(ChannelError) as caught:
        await post_webhook("http://10.0.0.8/robot/send?key=robot-access-key", SECRET, {"x": 1}, "d")
    assert "robot-access-key" not in str(caught.value)


@pytest.mark.parametrize("url", [
    "http://127.0.0.1/hook",
    "http://10.1.2.3/hook",
    "http://192.168.1.10/hook",
    "http://169.254.169.254/latest/meta-data/",
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[fe80::1]/hook",
    "http://100.64.0.1/hook",
    "http://0.0.0.0/hook",
    "http://224.0.0.1/hook",
    "http://localhost:8080/hook",
    "http://2130706433/hook",  # 127.0.0.1 written as one number
    "ftp://93.184.216.34/file",
    "file:///etc/passwd",
    "http:///no-host",
    "http://no-such-host.invalid/hook",
])
async def test_check_url_refuses(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        await check_url(url)


@pytest.mark.parametrize("url", [
    "http://93.184.216.34/hook",
    "https://93.184.216.34:8443/hook?key=abc",
    "https://[2606:2800:220:1:248:1893:25c8:1946]/hook",
    "http://[::ffff:93.184.216.34]/hook",
])
async def test_check_url_accepts_public_addresses(url: str) -> None:
    await check_url(url)


async def test_check_url_allow_private_still_checks_the_scheme() -> None:
    await check_url("http://127.0.0.1:9000/hook", allow_private=True)
    with pytest.raises(UnsafeUrl):
        await check_url("ftp://127.0.0.1/file", allow_private=True)


# ---------------------------------------------------------------- signatures


NOW = datetime(2025, 4, 1, 1, 0, tzinfo=UTC)
TIMESTAMP = str(int(NOW.timestamp()))
BODY = json.dumps({"milestone": MILESTONE}, ensure_ascii=False).encode("utf-8")


def test_verify_accepts_a_good_signature() -> None:
    signature = sign(SECRET, TIMESTAMP, BODY)
    assert len(signature) == 64
    assert verify(SECRET, TIMESTAMP, BODY, signature, now=NOW)
    assert verify(SECRET, TIMESTAMP, BODY, "sha256=" + signature, now=NOW + timedelta(seconds=299))


def test_verify_rejects_tampering() -> None:
    signature = "sha256=" + sign(SECRET, TIMESTAMP, BODY)
    assert not verify(SECRET, TIMESTAMP, BODY + b" ", signature, now=NOW)
    assert not verify("another-secret", TIMESTAMP, BODY, signature, now=NOW)
    # A fresh timestamp cannot be glued onto an old signature.
    later = str(int(NOW.timestamp()) + 60)
    assert not verify(SECRET, later, BODY, signature, now=NOW)
    assert not verify(SECRET, TIMESTAMP, BODY, "sha256=" + "0" * 64, now=NOW)
    assert not verify(SECRET, TIMESTAMP, BODY, "", now=NOW)


def test_verify_rejects_stale_and_malformed_timestamps() -> None:
    signature = sign(SECRET, TIMESTAMP, BODY)
    assert not verify(SECRET, TIMESTAMP, BODY, signature, now=NOW + timedelta(seconds=301))
    assert not verify(SECRET, TIMESTAMP, BODY, signature, now=NOW - timedelta(seconds=301))
    assert verify(SECRET, TIMESTAMP, BODY, signature, now=NOW + timedelta(seconds=30), tolerance_seconds=60)
    assert not verify(SECRET, TIMESTAMP, BODY, signature, now=NOW + timedelta(seconds=90), tolerance_seconds=60)
    for bad in ("", "soon", "-1", "1.5e9"):
        assert not verify(SECRET, bad, BODY, sign(SECRET, bad, BODY), now=NOW)

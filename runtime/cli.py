"""`accord`: one command for every process and chore.

    accord dev           everything in one process on embedded defaults (what `make run` runs)
    accord worker        a Temporal worker (any number, against ACCORD_TEMPORAL_ADDRESS)
    accord api           the HTTP API (any number, against ACCORD_DATABASE_URL)
    accord migrate       apply pending SQL migrations
    accord user create   create a user and print an API token
    accord user set-password   set a user's password (sign-in at POST /api/v1/auth/login)
    accord demo          drive the Mianyang / Boao Zhongheng case through a running API
    accord reconcile     compare the read model with the workflows' state (--repair: rewrite it from them)
    accord documents verify   read every stored document back and check its SHA-256 and seals
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.settings import Settings, get_settings

if TYPE_CHECKING:  # imported lazily at run time: `accord --help` stays fast
    import asyncpg

    from runtime.mail_sink import MailSink

log = logging.getLogger("accord")


# ---------------------------------------------------------------- dev: everything in one process


def configure_observability(settings: Settings) -> None:
    """Logs as ACCORD_LOG_FORMAT and ACCORD_LOG_LEVEL say; tracing when ACCORD_OTEL_ENDPOINT is set."""
    from observability.logs import configure_logging
    from observability.tracing import configure_tracing

    configure_logging(settings)
    if configure_tracing(settings):
        log.info("tracing to %s as %s", settings.otel_endpoint, settings.otel_service_name)


def cmd_dev(args: argparse.Namespace) -> None:
    from runtime.embedded import TemporalDevServer, start_embedded_postgres

    settings = get_settings()
    configure_observability(settings)
    data = settings.data_dir.resolve()
    data.mkdir(parents=True, exist_ok=True)
    database_url = settings.database_url
    app_database_url = database_url
    if database_url is None:
        print(f"Starting PostgreSQL (data in {settings.embedded_database_dir}) ...", flush=True)
        database_url = start_embedded_postgres(settings.embedded_database_dir, "accord").url
        # The owner migrates; the worker and API connect as accord_app, which may only
        # insert into the audit trail (the embedded server trusts its local socket).
        app_database_url = database_url.replace("postgresql://postgres:@", "postgresql://accord_app:@", 1)
    temporal: TemporalDevServer | None = None
    address = settings.temporal_address
    if address is None:
        print(f"Starting the Temporal dev server (history in {settings.temporal_db_file}) ...", flush=True)
        temporal = TemporalDevServer(settings.temporal_db_file, settings.temporal_port, settings.temporal_ui_port,
                                     data / "temporal.log")
        temporal.start()
        address = temporal.address
    try:
        asyncio.run(_serve_everything(settings, database_url, app_database_url or database_url, address,
                                      show_temporal_ui=temporal is not None))
    finally:
        if temporal is not None:
            print("Stopping the Temporal dev server ...", flush=True)
            temporal.stop()
        print("Stopped. Data kept in", data, flush=True)  # PostgreSQL stops when this process exits


class _Server:
    """uvicorn without its own signal handling: `accord dev` stops API, worker and servers in order."""

    def __init__(self, app: object, host: str, port: int) -> None:
        import uvicorn

        class Quiet(uvicorn.Server):
            @contextlib.contextmanager
            def capture_signals(self) -> Iterator[None]:
                yield

        # Logging as configure_observability set it up; api/request_log.py replaces the access log.
        self.server = Quiet(uvicorn.Config(app, host=host, port=port, log_level="warning", log_config=None,
                                           access_log=False))

    async def serve(self) -> None:
        await self.server.serve()

    def stop(self) -> None:
        self.server.should_exit = True


async def _serve_everything(settings: Settings, owner_url: str, database_url: str, address: str,
                            show_temporal_ui: bool) -> None:
    from api.app import create_app
    from db.migrate import migrate
    from db.pool import connect as connect_db
    from db.pool import create_pool
    from runtime.checkpoints import checkpoint_once, checkpoint_periodically
    from runtime.connections import reminder_config, services_for
    from runtime.mail_sink import MailSink
    from runtime.temporal import build_worker, connect_with

    owner = await connect_db(owner_url)
    try:
        await migrate(owner)
        if database_url != owner_url:
            await owner.execute("ALTER ROLE accord_app LOGIN")
        token = await _ensure_admin(owner, settings.admin_token_file)
        passwords = await _ensure_sign_in(owner, settings.data_dir / "sign-in.txt")
    finally:
        await owner.close()
    pool = await create_pool(database_url, max_size=settings.database_pool_size)
    # Without a relay configured, mail goes to a local sink that keeps it in .data/mail.
    sink = None if settings.smtp_host else MailSink(settings.data_dir.resolve() / "mail", port=settings.smtp_port)
    try:
        audit_key = _ensure_audit_key(settings)
        client = await connect_with(settings, address)
        if sink is not None:
            sink.start()
        worker = build_worker(client, pool, settings.task_queue,
                              reminders=reminder_config(settings, sink.port if sink else None), settings=settings)
        server = _Server(create_app(services_for(settings, pool, client, audit_key, email_enabled=True)),
                         settings.api_host,
                         settings.api_port)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, server.stop)
        checkpoints = asyncio.create_task(
            checkpoint_periodically(pool, audit_key, settings.audit_checkpoint_seconds))
        async with worker:
            _print_banner(settings, database_url, address, token, show_temporal_ui, sink, passwords)
            await server.serve()
            print("\nShutting down: API stopped, draining the worker ...", flush=True)
        checkpoints.cancel()
        await checkpoint_once(pool, audit_key)  # sign the head as we leave it
    finally:
        if sink is not None:
            sink.stop()
        await pool.close()


def _ensure_audit_key(settings: Settings) -> bytes:
    """The configured checkpoint key, or one generated into the data directory on first start."""
    import secrets

    key = settings.resolved_audit_key()
    if key is None:
        settings.audit_key_file.write_text(secrets.token_hex(32) + "\n")
        settings.audit_key_file.chmod(0o600)
        key = settings.resolved_audit_key()
    assert key is not None
    return key


async def _ensure_admin(conn: asyncpg.Connection, token_file: Path) -> str | None:
    """On first start create `admin` and its token; the token is printed and kept in the data dir."""
    from db.audit_chain import AuditEvent, append
    from db.users import create_user, find_user, issue_token

    if await find_user(conn, "admin") is not None:
        return None
    async with conn.transaction():
        user = await create_user(conn, "admin", "Administrator", "admin")
        token = await issue_token(conn, user.id, "created by accord dev")
        await append(conn, AuditEvent(
            actor_id="system", actor_name="accord dev", actor_role="system", auth_method="cli",
            action="user.created", entity_type="user", entity_id=user.id,
            after={"username": "admin", "role": "admin", "api_token": "issued (secret not recorded)"}))
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    return token


async def _ensure_sign_in(conn: asyncpg.Connection, record: Path) -> list[tuple[str, str]]:
    """On first start, passwords for `admin` and the demo's people, so the web pages can be
    signed in to at once; also written to `record` (mode 600) for the next start."""
    from runtime.demo import PEOPLE, ensure_people, ensure_sign_in

    async with conn.transaction():
        await ensure_people(conn)
        created = await ensure_sign_in(conn, ["admin", *(username for username, *_ in PEOPLE)])
    if created:
        with record.open("a") as f:
            f.writelines(f"{username}\t{password}\n" for username, password in created)
        record.chmod(0o600)
    return created


def _print_banner(settings: Settings, database_url: str, address: str, token: str | None, ui: bool,
                  sink: MailSink | None, passwords: list[tuple[str, str]]) -> None:
    base = f"http://{settings.api_host}:{settings.api_port}"
    record = settings.data_dir / "sign-in.txt"
    lines = [
        "",
        "Accord is running.",
        f"  Web pages     {base}/   (Chinese; English from the button at the top right)",
        *(f"                sign in as {u:<18} password {p}" for u, p in passwords),
        f"                (passwords of first start, kept in {record})" if passwords
        else f"  Sign-in       usernames and first passwords in {record}",
        f"  API           {base}/api/v1   (docs: {base}/docs)",
        f"  Temporal UI   http://127.0.0.1:{settings.temporal_ui_port}" if ui else f"  Temporal      {address}",
        f"  PostgreSQL    {database_url}",
        f"  Mail sink     smtp://127.0.0.1:{sink.port}  (reminder mail kept in {sink.folder})" if sink
        else f"  Mail relay    {settings.smtp_host}:{settings.smtp_port}",
    ]
    if token:
        lines += [f"  Admin token   {token}", f"                (first start: saved to {settings.admin_token_file})"]
    else:
        lines.append(f"  Admin token   in {settings.admin_token_file} (created on first start)")
    lines += [
        "",
        "Try:   make demo        (or: .venv/bin/accord demo)",
        f"Scale: ACCORD_DATABASE_URL='{database_url}' ACCORD_TEMPORAL_ADDRESS={address} .venv/bin/accord worker",
        "Stop:  Ctrl-C (data is kept for the next `make run`)",
        "",
    ]
    print("\n".join(lines), flush=True)


# ---------------------------------------------------------------- separate processes


def cmd_worker(args: argparse.Namespace) -> None:
    """Poll the task queue until SIGTERM or SIGINT, then drain: no new tasks are taken, in-flight
    workflow tasks finish, in-flight activities get ACCORD_WORKER_SHUTDOWN_SECONDS to finish before
    they are cancelled (Temporal then retries them on another worker). /metrics and /healthz on
    ACCORD_WORKER_METRICS_PORT; /healthz turns 503 if the worker stopped on a fatal error."""
    settings = get_settings()
    configure_observability(settings)

    async def main() -> None:
        from observability.metrics import MetricsServer
        from runtime.checkpoints import checkpoint_periodically
        from runtime.connections import open_services, reminder_config
        from runtime.temporal import build_worker

        async with open_services(settings) as services:
            worker = build_worker(services.client, services.pool, services.task_queue,
                                  reminders=reminder_config(settings), settings=settings)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            run = asyncio.create_task(worker.run())
            metrics = None
            if settings.worker_metrics_port:
                metrics = MetricsServer(settings.worker_metrics_port, health=lambda: worker_health(run))
                await metrics.start()
            checkpoints = asyncio.create_task(checkpoint_periodically(
                services.pool, services.audit_key, settings.audit_checkpoint_seconds))
            log.info("worker polling task queue %r of namespace %r%s; Ctrl-C or SIGTERM to stop",
                     services.task_queue, settings.temporal_namespace,
                     f", metrics on :{metrics.port}/metrics" if metrics else "")
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({run, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not run.done():
                log.info("stopping: draining the worker (activities get up to %gs)", settings.worker_shutdown_seconds)
                await worker.shutdown()
            stopping.cancel()
            checkpoints.cancel()
            if metrics is not None:
                await metrics.stop()
            await run  # a worker that stopped on its own raised: the process exits non-zero
            log.info("worker stopped")

    asyncio.run(main())


def worker_health(run: asyncio.Task[None]) -> tuple[bool, str]:
    """/healthz of `accord worker`: alive while the worker's run task has not ended."""
    if not run.done():
        return True, "polling"
    error = None if run.cancelled() else run.exception()
    return False, f"the worker stopped: {error!r}" if error else "the worker stopped"


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    from api.app import create_app
    from runtime.connections import require

    settings = get_settings()
    require(settings)
    configure_observability(settings)
    # Logging as configure_observability set it up; api/request_log.py replaces the access log.
    uvicorn.run(create_app(), host=args.host or settings.api_host, port=args.port or settings.api_port,
                log_config=None, access_log=False)


def cmd_migrate(args: argparse.Namespace) -> None:
    async def main() -> None:
        from db.migrate import migrate
        from db.pool import connect as connect_db
        from runtime.connections import require

        database_url = args.database_url or require(get_settings())[0]
        conn = await connect_db(database_url)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        print("applied: " + ", ".join(applied) if applied else "nothing to apply: the schema is current")

    asyncio.run(main())


def cmd_user_create(args: argparse.Namespace) -> None:
    async def main() -> None:
        from db.audit_chain import AuditEvent, append
        from db.pool import connect as connect_db
        from db.users import create_user, find_user, issue_token
        from runtime.connections import require

        database_url = args.database_url or require(get_settings())[0]
        conn = await connect_db(database_url)
        try:
            async with conn.transaction():
                if await find_user(conn, args.username) is not None:
                    raise SystemExit(f"user {args.username!r} exists already")
                user = await create_user(conn, args.username, args.name or args.username, args.role,
                                         args.department)
                await conn.execute("UPDATE users SET email = $2, language = $3 WHERE id = $1",
                                   user.id, args.email, args.language)
                token = await issue_token(conn, user.id, "created by accord user create")
                await append(conn, AuditEvent(
                    actor_id="system", actor_name="accord user create", actor_role="system", auth_method="cli",
                    action="user.created", entity_type="user", entity_id=user.id,
                    after={"username": user.username, "display_name": user.display_name, "role": user.role,
                           "department": user.department, "email": args.email, "language": args.language,
                           "api_token": "issued (secret not recorded)"}))
        finally:
            await conn.close()
        print(f"created user {user.username} ({user.role}); API token (shown once):\n{token}")

    asyncio.run(main())


def cmd_user_set_password(args: argparse.Namespace) -> None:
    """Set (or reset) a user's password: from ACCORD_NEW_PASSWORD, else asked twice without echo.
    Ends the user's sessions and forgives their failed sign-ins (an administrator's reset unlocks)."""
    import getpass

    password = os.environ.get("ACCORD_NEW_PASSWORD")
    if password is None:
        password = getpass.getpass(f"New password for {args.username}: ")
        if getpass.getpass("Again: ") != password:
            raise SystemExit("the two passwords differ; nothing was changed")

    async def main() -> int:
        from datetime import UTC, datetime

        from db import passwords, sessions
        from db.audit_chain import AuditEvent, append
        from db.pool import connect as connect_db
        from db.users import find_user
        from runtime.connections import require

        conn = await connect_db(args.database_url or require(get_settings())[0])
        try:
            user = await find_user(conn, args.username)
            if user is None:
                raise SystemExit(f"no user {args.username!r}")
            now = datetime.now(UTC)
            async with conn.transaction():
                await passwords.set_password(conn, user.id, password, now)
                await passwords.clear_failures(conn, user.username)
                revoked = await sessions.revoke_all(conn, user.id, now)
                await append(conn, AuditEvent(
                    actor_id="system", actor_name="accord user set-password", actor_role="system", auth_method="cli",
                    action="auth.password_set", entity_type="user", entity_id=user.id,
                    after={"username": user.username, "sessions_revoked": revoked}))
            return revoked
        finally:
            await conn.close()

    from db.passwords import PasswordRejected

    try:
        revoked = asyncio.run(main())
    except PasswordRejected as error:
        raise SystemExit("password refused, it " + "; it ".join(error.reasons)) from None
    print(f"password of {args.username} set; {revoked} session(s) ended")


def cmd_demo(args: argparse.Namespace) -> None:
    from runtime.connections import require
    from runtime.demo import run_demo

    settings = get_settings()
    database_url = args.database_url or require(settings)[0]
    url = args.url or f"http://{settings.api_host}:{settings.api_port}"
    run_demo(url, database_url)


def cmd_audit(args: argparse.Namespace) -> None:
    async def main() -> None:
        from db.pool import connect as connect_db
        from runtime import audit_admin
        from runtime.connections import require, require_audit_key

        settings = get_settings()
        conn = await connect_db(args.database_url or require(settings)[0])
        try:
            if args.audit_command == "verify":
                result = await audit_admin.run_verify(conn, require_audit_key(settings), settings.retired_audit_keys())
                print(json.dumps(result, indent=1))
                if not result["intact"]:
                    raise SystemExit(1)
            elif args.audit_command == "checkpoint":
                print(json.dumps(await audit_admin.run_checkpoint(conn, require_audit_key(settings))))
            elif args.audit_command == "partitions":
                print("\n".join(await audit_admin.ensure_partitions(conn, args.months)))
            elif args.audit_command == "archive":
                month = date.fromisoformat(args.month + "-01")
                print(json.dumps(await audit_admin.archive_month(conn, require_audit_key(settings), month,
                                                                 Path(args.out), settings.audit_retention_days,
                                                                 settings.retired_audit_keys())))
        finally:
            await conn.close()

    asyncio.run(main())


def cmd_reminders_resync(args: argparse.Namespace) -> None:
    """Tell every open project to reload its reminder settings. Also moves project runs started
    before reminders existed onto the reminding code (they continue as new on this signal)."""

    async def main() -> None:
        from runtime.connections import open_services
        from runtime.reminders import open_project_ids, tell_projects

        async with open_services() as services:
            async with services.pool.acquire() as conn:
                project_ids = await open_project_ids(conn)
            told = await tell_projects(services.client, project_ids)
        print(f"told {told} of {len(project_ids)} open projects to reload their reminder settings")

    asyncio.run(main())


def cmd_documents_verify(args: argparse.Namespace) -> None:
    """Every document version (or a cooperation's) read back from the store and checked; exit 1
    when one is altered, missing, or sealed somewhere with another fingerprint."""

    async def main() -> int:
        from db.pool import create_pool
        from runtime.connections import open_document_store, require
        from runtime.documents_admin import verify_all

        settings = get_settings()
        pool = await create_pool(args.database_url or require(settings)[0], max_size=2)
        store = open_document_store(settings)
        try:
            report = await verify_all(pool, store, args.cooperation or None)
        finally:
            await pool.close()
            close = getattr(store, "close", None)
            if close is not None:
                await close()
        for problem in report.problems:
            print(json.dumps(problem.model_dump(mode="json"), ensure_ascii=False))
        print(report.summary(), flush=True)
        return 0 if report.ok else 1

    raise SystemExit(asyncio.run(main()))


def cmd_reconcile(args: argparse.Namespace) -> None:
    """Compare every workflow's state with its read-model rows (runtime/reconcile.py); print each
    difference; exit 1 when any remains. --repair rewrites the differing rows from the workflow
    (audited as `readmodel.repaired`), then compares again."""

    async def main() -> int:
        from db.pool import create_pool
        from runtime.connections import require
        from runtime.reconcile import reconcile
        from runtime.temporal import connect_with

        settings = get_settings()
        database_url, address = require(settings)
        pool = await create_pool(args.database_url or database_url, max_size=4)
        try:
            client = await connect_with(settings, address)
            scope = dict(task_queue=settings.task_queue, cooperation_ids=args.cooperation or None)
            report = await reconcile(pool, client, repair=args.repair, **scope)
            for difference in report.differences:
                print(difference)
            print(report.summary(), flush=True)
            if args.repair and report.repaired:
                report = await reconcile(pool, client, **scope)
                for difference in report.differences:
                    print(difference)
                print("after the repair:", report.summary(), flush=True)
            return 0 if report.clean else 1
        finally:
            await pool.close()

    raise SystemExit(asyncio.run(main()))


# ---------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accord", description="Accord: cooperation agreements and projects.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("dev", help="start everything on embedded defaults").set_defaults(func=cmd_dev)
    sub.add_parser("worker", help="run a Temporal worker").set_defaults(func=cmd_worker)
    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.set_defaults(func=cmd_api)
    migrate = sub.add_parser("migrate", help="apply pending migrations")
    migrate.add_argument("--database-url")
    migrate.set_defaults(func=cmd_migrate)
    user = sub.add_parser("user", help="manage users").add_subparsers(dest="user_command", required=True)
    create = user.add_parser("create", help="create a user and print an API token")
    create.add_argument("username")
    create.add_argument("--name", help="display name (default: the username)")
    create.add_argument("--role", default="liaison_officer",
                        choices=["liaison_officer", "reviewer", "leader", "auditor", "admin"])
    create.add_argument("--department", help="e.g. Investment Promotion Bureau")
    create.add_argument("--email", help="where reminder emails go (the inbox gets them anyway)")
    create.add_argument("--language", choices=["zh", "en"], default="zh", help="language of the user's notices")
    create.add_argument("--database-url")
    create.set_defaults(func=cmd_user_create)
    set_password = user.add_parser(
        "set-password", help="set a user's password (from ACCORD_NEW_PASSWORD, or asked for); ends their sessions")
    set_password.add_argument("username")
    set_password.add_argument("--database-url")
    set_password.set_defaults(func=cmd_user_set_password)
    audit = sub.add_parser("audit", help="the audit trail").add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="recompute the hash chain and check every checkpoint (exit 1 if broken)")
    audit.add_parser("checkpoint", help="sign the chain head now")
    partitions = audit.add_parser("partitions", help="create the monthly partitions ahead")
    partitions.add_argument("--months", type=int, default=24)
    archive = audit.add_parser("archive", help="export, verify and drop one month older than the retention")
    archive.add_argument("month", help="YYYY-MM")
    archive.add_argument("--out", default="audit-archive", help="folder for the JSON Lines export")
    for parser_ in audit.choices.values():
        parser_.add_argument("--database-url", help="as the database owner (default: ACCORD_DATABASE_URL)")
        parser_.set_defaults(func=cmd_audit)
    reminders = sub.add_parser("reminders", help="milestone reminders").add_subparsers(
        dest="reminders_command", required=True)
    reminders.add_parser("resync", help="make every open project reload policies and calendar").set_defaults(
        func=cmd_reminders_resync)
    reconcile = sub.add_parser("reconcile", help="compare every workflow's state with the read model (exit 1 on "
                               "a difference); --repair rewrites the read model from the workflows")
    reconcile.add_argument("--repair", action="store_true", help="rewrite differing rows from the workflow (audited)")
    reconcile.add_argument("--cooperation", action="append", metavar="ID",
                           help="only this cooperation and its projects (repeatable)")
    reconcile.add_argument("--database-url", help="as the database owner (default: ACCORD_DATABASE_URL)")
    reconcile.set_defaults(func=cmd_reconcile)
    documents = sub.add_parser("documents", help="agreement documents").add_subparsers(
        dest="documents_command", required=True)
    check = documents.add_parser("verify", help="read every stored version back and check its SHA-256 and seals "
                                                "(exit 1 on a problem)")
    check.add_argument("--cooperation", action="append", metavar="ID", help="only this cooperation (repeatable)")
    check.add_argument("--database-url", help="default: ACCORD_DATABASE_URL, or that of `make run`")
    check.set_defaults(func=cmd_documents_verify)
    demo = sub.add_parser("demo", help="drive the seed case through the API")
    demo.add_argument("--url", help="API base URL (default http://127.0.0.1:8000)")
    demo.add_argument("--database-url", help="to create the demo's people (default: that of `make run`)")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    args = build_parser().parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        args.func(args)


if __name__ == "__main__":
    sys.exit(main())

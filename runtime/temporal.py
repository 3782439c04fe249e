"""Connecting to Temporal and building the worker.

`connect_with(settings)` is how the processes connect: the namespace, TLS, mTLS or an API
key (Temporal Cloud), the SDK runtime whose Prometheus endpoint serves Temporal's own
metrics when ACCORD_TEMPORAL_METRICS_PORT is set, and the tracing interceptor when tracing
is on. `build_worker(..., settings=...)` applies the worker's concurrency and graceful
shutdown settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import lru_cache

import asyncpg
from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig
from temporalio.worker import Worker

from activities.readmodel import ReadModelActivities
from activities.reminders import ReminderActivities, ReminderConfig
from observability import tracing
from runtime.settings import Settings
from workflows.cooperation import CooperationWorkflow
from workflows.project import ProjectWorkflow

WORKFLOWS = [CooperationWorkflow, ProjectWorkflow]


async def connect(address: str, namespace: str = "default", *, tls: bool | TLSConfig = False,
                  api_key: str | None = None, runtime: Runtime | None = None,
                  interceptors: Sequence[Interceptor] | None = None) -> Client:
    """A client with the pydantic data converter; the tracing interceptor while tracing is on."""
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter,
        tls=tls or bool(api_key), api_key=api_key, runtime=runtime,
        interceptors=tracing.interceptors() if interceptors is None else interceptors,
    )


async def connect_with(settings: Settings, address: str | None = None) -> Client:
    """Connect as the settings say (`address` overrides: the dev server `accord dev` started)."""
    return await connect(
        address or settings.resolved_temporal_address(), settings.temporal_namespace, tls=tls_config(settings),
        api_key=settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None,
        runtime=sdk_runtime(settings.temporal_metrics_port) if settings.temporal_metrics_port else None,
    )


def tls_config(settings: Settings) -> bool | TLSConfig:
    """False (plain), True (TLS with the system's roots) or the configured CA and client certificate."""
    ca, cert, key = settings.temporal_tls_ca_file, settings.temporal_tls_cert_file, settings.temporal_tls_key_file
    if (cert is None) != (key is None):
        raise SystemExit("set both ACCORD_TEMPORAL_TLS_CERT_FILE and ACCORD_TEMPORAL_TLS_KEY_FILE (mTLS), or neither")
    if ca is None and cert is None:
        return settings.temporal_tls or settings.temporal_api_key is not None
    return TLSConfig(server_root_ca_cert=ca.read_bytes() if ca else None,
                     client_cert=cert.read_bytes() if cert else None,
                     client_private_key=key.read_bytes() if key else None)


@lru_cache
def sdk_runtime(metrics_port: int, host: str = "0.0.0.0") -> Runtime:
    """The SDK runtime whose telemetry serves Temporal's own metrics on `host:metrics_port`.

    One per process and port (the endpoint binds once); clients and their workers share it."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(
        bind_address=f"{host}:{metrics_port}", counters_total_suffix=True, durations_as_seconds=True)))


def worker_options(settings: Settings) -> dict[str, object]:
    """Task slots and graceful shutdown from the settings. Local activities (the read-model
    writes of histories recorded before `write-after-accept`) get as many slots as activities."""
    return dict(
        max_concurrent_activities=settings.worker_max_concurrent_activities,
        max_concurrent_local_activities=settings.worker_max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.worker_max_concurrent_workflow_tasks,
        graceful_shutdown_timeout=timedelta(seconds=settings.worker_shutdown_seconds),
    )


def build_worker(client: Client, pool: asyncpg.Pool, task_queue: str, reminders: ReminderConfig | None = None,
                 settings: Settings | None = None, **options: object) -> Worker:
    """The worker of both workflows and all activities. With `settings`, its slots and shutdown
    grace; explicit `options` win. Traced while tracing is on (unless the client already is)."""
    if settings is not None:
        options = {**worker_options(settings), **options}
    interceptors = [*tracing.worker_interceptors(client), *options.pop("interceptors", [])]  # type: ignore[misc]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=[*ReadModelActivities(pool).all(), *ReminderActivities(pool, reminders or ReminderConfig()).all()],
        interceptors=interceptors,
        **options,  # type: ignore[arg-type]
    )

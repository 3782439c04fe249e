"""Configuration from ACCORD_* environment variables (and a `.env` file).

Leave ACCORD_TEMPORAL_ADDRESS and ACCORD_DATABASE_URL unset and `accord dev`
starts embedded servers; set them and every command uses the existing ones.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

MINIMUM_RETENTION_DAYS = 180  # Cybersecurity Law art. 21: network logs kept at least six months


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ACCORD_", env_file=".env", extra="ignore")

    temporal_address: str | None = None
    temporal_namespace: str = "default"
    task_queue: str = "accord"
    database_url: str | None = None
    database_pool_size: int = 10

    # HMAC key of the audit checkpoints: keep it outside the database (a secret store).
    # Unset under `accord dev`: a key is generated into the data directory.
    audit_checkpoint_key: SecretStr | None = None
    # Keys used before a rotation (JSON list, e.g. '["old secret"]'): never sign, only check the
    # checkpoints they signed, each found by the key id the checkpoint records.
    audit_checkpoint_retired_keys: list[SecretStr] = Field(default_factory=list)
    audit_checkpoint_seconds: float = 300.0
    audit_retention_days: int = Field(default=MINIMUM_RETENTION_DAYS, ge=MINIMUM_RETENTION_DAYS)

    # Reminders: when notices go out (office time, UTC+8), how long a channel that is down is
    # retried before the failure goes to the liaison officer's inbox, and who "leadership" is.
    reminder_hour: int = Field(default=9, ge=0, le=23)
    reminder_until_hour: int = Field(default=18, ge=1, le=24)
    delivery_retry_hours: float = Field(default=72.0, gt=0)
    delivery_attempt_seconds: float = Field(default=120.0, ge=5)
    delivery_first_retry_seconds: float = Field(default=30.0, ge=1)
    leadership_department: str = "leadership-office"
    reminder_calendar: str = "China mainland"

    # Email. Unset host under `accord dev`: a local SMTP sink on smtp_port keeps mail in .data/mail.
    smtp_host: str | None = None
    smtp_port: int = 8025
    smtp_starttls: bool = False
    smtp_tls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_sender: str = "Accord <accord@localhost>"

    # Outbound webhooks to loopback, link-local or private addresses are refused unless allowed.
    webhook_allow_private: bool = False
    # How the API is reached from outside: links in notices and calendar-feed URLs.
    # An https URL also turns on Strict-Transport-Security for every answer.
    public_url: str = "http://127.0.0.1:8000"
    # "production" serves no interactive API pages (/docs, /redoc); /openapi.json stays.
    environment: Literal["development", "production"] = "development"
    # Request limits, checked before authentication: a larger body is a 413, deeper JSON a 422.
    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_json_depth: int = Field(default=32, ge=2, le=1000)

    # Sign-in (api/auth.py): sessions end after this long without a request, or this long after
    # sign-in, whichever comes first. Failed sign-ins within the window: from `login_throttle_after`
    # on each further attempt waits (login_throttle_seconds, doubling); `login_lockout_after` lock the
    # account for login_lockout_minutes; `login_source_limit` from one address refuse it every sign-in.
    session_idle_minutes: float = Field(default=30.0, gt=0)
    session_absolute_hours: float = Field(default=12.0, gt=0)
    login_window_minutes: float = Field(default=15.0, gt=0)
    login_throttle_after: int = Field(default=5, ge=1)
    login_throttle_seconds: float = Field(default=2.0, gt=0)
    login_lockout_after: int = Field(default=10, ge=1)
    login_lockout_minutes: float = Field(default=15.0, gt=0)
    login_source_limit: int = Field(default=50, ge=1)
    # Mark the session cookie Secure even when TLS ends at a proxy uvicorn does not trust
    # (otherwise it is Secure exactly when the request arrived as HTTPS).
    cookie_secure: bool = False

    # Operations (README "Operations: probes, logs, metrics, tracing").
    log_format: Literal["text", "json"] = "text"  # json: one JSON object a line (the deploy files set it)
    log_level: str = "INFO"
    worker_metrics_port: int = Field(default=9464, ge=0, le=65535)  # `accord worker`'s /metrics and /healthz; 0: off
    temporal_metrics_port: int = Field(default=0, ge=0, le=65535)  # the Temporal SDK's Prometheus endpoint; 0: off
    # Temporal Cloud or a TLS-fronted cluster: TLS (server CA optional), mTLS with a client
    # certificate and key, or an API key (which implies TLS).
    temporal_tls: bool = False
    temporal_tls_ca_file: Path | None = None
    temporal_tls_cert_file: Path | None = None
    temporal_tls_key_file: Path | None = None
    temporal_api_key: SecretStr | None = None
    # The worker: task slots, and how long in-flight activities may finish after SIGTERM
    # before they are cancelled (and retried by another worker).
    worker_max_concurrent_activities: int = Field(default=100, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=2)
    worker_shutdown_seconds: float = Field(default=30.0, ge=0)
    # OpenTelemetry tracing, off unless an OTLP/HTTP endpoint is set (e.g. http://collector:4318).
    otel_endpoint: str | None = None
    otel_service_name: str = "accord"

    # Agreement documents (README "Agreement documents"): where their bytes live, and the largest
    # file taken (413 beyond). "local" keeps them under document_dir (default <data_dir>/documents);
    # "s3" in a bucket of any S3-compatible service (path-style addressing, SigV4).
    document_store: Literal["local", "s3"] = "local"
    document_dir: Path | None = None
    document_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024, le=5 * 1024**3)
    s3_endpoint: str | None = None  # e.g. https://s3.cn-north-1.amazonaws.com.cn or http://minio:9000
    s3_bucket: str = "accord-documents"
    s3_region: str = "us-east-1"
    s3_prefix: str = "documents/"
    s3_access_key: str | None = None
    s3_secret_key: SecretStr | None = None

    data_dir: Path = Path(".data")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    # Embedded Temporal dev server ports (used only when temporal_address is unset).
    temporal_port: int = 7233
    temporal_ui_port: int = 8233

    @property
    def embedded_database_dir(self) -> Path:
        return self.data_dir.resolve() / "pg"

    @property
    def temporal_db_file(self) -> Path:
        return self.data_dir.resolve() / "temporal.sqlite"

    def resolved_database_url(self) -> str | None:
        """The configured URL, or the embedded server's socket when `accord dev` has created one."""
        if self.database_url:
            return self.database_url
        if (self.embedded_database_dir / "PG_VERSION").exists():
            return f"postgresql://postgres:@/accord?host={self.embedded_database_dir}"
        return None

    def resolved_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.temporal_port}"

    @property
    def audit_key_file(self) -> Path:
        return self.data_dir.resolve() / "audit-checkpoint-key"

    def resolved_audit_key(self) -> bytes | None:
        if self.audit_checkpoint_key is not None:
            return self.audit_checkpoint_key.get_secret_value().encode()
        if self.audit_key_file.exists():
            return self.audit_key_file.read_text().strip().encode()
        return None

    def retired_audit_keys(self) -> tuple[bytes, ...]:
        return tuple(k.get_secret_value().encode() for k in self.audit_checkpoint_retired_keys)

    def resolved_document_dir(self) -> Path:
        return (self.document_dir or self.data_dir / "documents").resolve()

    @property
    def admin_token_file(self) -> Path:
        return self.data_dir.resolve() / "admin-token"


@lru_cache
def get_settings() -> Settings:
    return Settings()

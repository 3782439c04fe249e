"""Operations: structured logs, Prometheus metrics and optional OpenTelemetry tracing.

Nothing here is imported by workflow code: workflows log through `workflow.logger` only,
whose records carry the workflow id and run id, and the JSON formatter writes those out.
"""

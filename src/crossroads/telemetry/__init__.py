"""Operational telemetry of a running gateway: Prometheus metrics counted from each request's
ledger record, and gauges read at scrape time. Imported by `ingress`, so it imports neither
`server` nor `cli`."""

from crossroads.telemetry.prometheus import LATENCY_BUCKETS, GatewayMetrics

__all__ = ["LATENCY_BUCKETS", "GatewayMetrics"]

"""Reports on the ledger (spend, savings, adoption, latency, error rates), computed only from
its rollups through `crossroads.ledger.store.RollupReader`, and the what-if pricing of usage
exports at other models."""

from crossroads.analytics.query import ReportQuery, resolve_dimensions
from crossroads.analytics.reports import REPORT_KINDS, run_report
from crossroads.analytics.result import Report

__all__ = ["REPORT_KINDS", "Report", "ReportQuery", "resolve_dimensions", "run_report"]

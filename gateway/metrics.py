"""Prometheus metrics. With several worker processes, prometheus-client's multiprocess mode
aggregates them (PROMETHEUS_MULTIPROC_DIR is set by `veil serve` before this module loads)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess
import os

MESSAGES = Counter("veil_messages_total", "Messages handled", ["direction", "verdict"])
LATENCY = Histogram("veil_message_seconds", "Time from end of DATA to reply", ["direction"],
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
NEXT_HOP_ERRORS = Counter("veil_next_hop_errors_total", "Next-hop failures", ["direction"])
QUARANTINE_HELD = Gauge("veil_quarantine_held", "Messages held in the quarantine",
                        multiprocess_mode="max")


def observe(direction: str, verdict: str, seconds: float, *, next_hop_error: bool = False) -> None:
    MESSAGES.labels(direction, verdict).inc()
    LATENCY.labels(direction).observe(seconds)
    if next_hop_error:
        NEXT_HOP_ERRORS.labels(direction).inc()


def exposition() -> bytes:
    """The text format for /metrics, aggregated across worker processes when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    from prometheus_client import REGISTRY
    return generate_latest(REGISTRY)

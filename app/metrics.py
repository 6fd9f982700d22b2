"""Prometheus metrics of one process: HTTP requests, outbox events, jobs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("kartochka_http_requests_total", "HTTP requests",
                                ["route", "method", "status"], registry=self.registry)
        self.latency = Histogram("kartochka_http_request_seconds", "HTTP request latency",
                                 ["route"], registry=self.registry,
                                 buckets=(.002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.events = Counter("kartochka_events_total", "Outbox events seen",
                              ["type"], registry=self.registry)

    def render(self) -> bytes:
        return generate_latest(self.registry)

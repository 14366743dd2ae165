"""Prometheus metrics of the scoring service, labelled with the model name and version.

Label values are bounded: the route label is a route template from the app's own table (unknown paths
share "unmatched"), statuses come from the app, so no client can grow the series set. The exposition is
rendered at most once per RENDER_SECONDS and served from that cache in between.

A request adds to plain counters (a dict entry, a bucket list): prometheus_client's Counter and Histogram
take a lock and make several calls a sample, which cost a one-row request more CPU than its JSON (about 2 us
of 15). The counters become the same metric families (names, labels, buckets) when /metrics is rendered.
observe() runs on the event loop's thread only; what other threads count (collector_dropped) stays a
prometheus_client Counter.
"""
from __future__ import annotations

import time
from bisect import bisect_left

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED = "unmatched"
RENDER_SECONDS = 1.0


class Metrics:
    """Requests, latency, errors by status, predictions served."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model: str, version: str, render_seconds: float = RENDER_SECONDS):
        self.render_seconds = render_seconds
        self.registry = CollectorRegistry()
        self._labels = [model, version]
        self._requests: dict[tuple[str, int], int] = {}  # (route, status): count
        self._latency: dict[str, list] = {}  # route: [count in each bucket (the last: +Inf), sum of seconds]
        self._predictions = 0
        self.registry.register(self)
        self.collector_dropped = Counter("mlops_collector_dropped", "Collected records dropped (queue full)",
                                         ["model", "version"], registry=self.registry).labels(model, version)
        self._rendered = (0.0, b"")

    def observe(self, route: str, status: int, seconds: float, predictions: int) -> None:
        """Record one request; route must be a template of the app's route table or UNMATCHED."""
        key = (route, status)
        requests = self._requests
        requests[key] = requests.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = [0] * (len(BUCKETS) + 1) + [0.0]
        latency[bisect_left(BUCKETS, seconds)] += 1  # a bucket counts values <= its bound
        latency[-1] += seconds
        if predictions:
            self._predictions += predictions

    def collect(self):
        """The metric families, for the registry (prometheus_client's custom collector protocol)."""
        labels = self._labels
        requests = CounterMetricFamily("mlops_requests", "HTTP requests", labels=["model", "version", "path", "status"])
        errors = CounterMetricFamily("mlops_request_errors", "Requests answered with an error status",
                                     labels=["model", "version", "status"])
        by_status: dict[int, int] = {}
        for (route, status), count in sorted(self._requests.items()):
            requests.add_metric(labels + [route, str(status)], count)
            if status >= 400:
                by_status[status] = by_status.get(status, 0) + count
        for status, count in sorted(by_status.items()):
            errors.add_metric(labels + [str(status)], count)
        latency = HistogramMetricFamily("mlops_request_duration_seconds", "Request latency",
                                        labels=["model", "version", "path"])
        for route, counts in sorted(self._latency.items()):
            cumulative, buckets = 0, []
            for bound, count in zip(BUCKETS + (float("inf"),), counts):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            latency.add_metric(labels + [route], buckets, sum_value=counts[-1])
        predictions = CounterMetricFamily("mlops_predictions", "Predictions served", labels=["model", "version"])
        predictions.add_metric(labels, self._predictions)
        return [requests, latency, errors, predictions]

    def render(self) -> bytes:
        """The Prometheus text exposition (cached for render_seconds)."""
        now = time.monotonic()
        at, body = self._rendered
        if not body or now - at >= self.render_seconds:
            body = generate_latest(self.registry)
            self._rendered = (now, body)
        return body

"""Prometheus metrics of the scoring service, labelled with the model name and version.

Label values are bounded: the route label is a route template from the app's own table (unknown paths
share "unmatched"), statuses come from the app, so no client can grow the series set. The exposition is
rendered at most once per RENDER_SECONDS and served from that cache in between.
"""
from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
UNMATCHED = "unmatched"
RENDER_SECONDS = 1.0


class Metrics:
    """Requests, latency, errors by status, predictions served; label children cached per key."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model: str, version: str, render_seconds: float = RENDER_SECONDS):
        self.render_seconds = render_seconds
        self.registry = CollectorRegistry()
        labels = {"model": model, "version": version}
        self._requests = Counter("mlops_requests", "HTTP requests", ["model", "version", "path", "status"],
                                 registry=self.registry)
        self._latency = Histogram("mlops_request_duration_seconds", "Request latency", ["model", "version", "path"],
                                  buckets=BUCKETS, registry=self.registry)
        self._errors = Counter("mlops_request_errors", "Requests answered with an error status",
                               ["model", "version", "status"], registry=self.registry)
        self._predictions = Counter("mlops_predictions", "Predictions served", ["model", "version"],
                                    registry=self.registry).labels(**labels)
        self.collector_dropped = Counter("mlops_collector_dropped", "Collected records dropped (queue full)",
                                         ["model", "version"], registry=self.registry).labels(**labels)
        self._labels = labels
        self._children: dict = {}
        self._rendered = (0.0, b"")

    def observe(self, route: str, status: int, seconds: float, predictions: int) -> None:
        """Record one request; route must be a template of the app's route table or UNMATCHED."""
        key = (route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(path=route, status=str(status), **self._labels),
                self._latency.labels(path=route, **self._labels),
                self._errors.labels(status=str(status), **self._labels) if status >= 400 else None,
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if children[2] is not None:
            children[2].inc()
        if predictions:
            self._predictions.inc(predictions)

    def render(self) -> bytes:
        """The Prometheus text exposition (cached for render_seconds)."""
        now = time.monotonic()
        at, body = self._rendered
        if not body or now - at >= self.render_seconds:
            body = generate_latest(self.registry)
            self._rendered = (now, body)
        return body

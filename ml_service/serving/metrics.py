"""Prometheus metrics of the scoring service, labelled with the model name and version."""
from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Requests, latency, errors by status, predictions served; label children cached per key."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(self, model: str, version: str):
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

    def observe(self, path: str, status: int, seconds: float, predictions: int) -> None:
        """Record one request."""
        key = (path, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self._requests.labels(path=path, status=str(status), **self._labels),
                self._latency.labels(path=path, **self._labels),
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
        """The Prometheus text exposition."""
        return generate_latest(self.registry)

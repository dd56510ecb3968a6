"""Metric points from an in-memory reader as ``{name: [(attributes, value), ...]}``."""

from __future__ import annotations

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader


class MetricCapture:
    """A meter provider whose points tests read as plain data."""

    def __init__(self) -> None:
        self.reader = InMemoryMetricReader()
        self.provider = MeterProvider(metric_readers=[self.reader])

    def points(self) -> dict[str, list[tuple[dict, object]]]:
        found: dict[str, list[tuple[dict, object]]] = {}
        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data else ():
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", None)
                        if value is None:  # histogram
                            value = {
                                "count": point.count,
                                "sum": point.sum,
                                "bounds": tuple(point.explicit_bounds),
                            }
                        found.setdefault(metric.name, []).append((dict(point.attributes), value))
        return found

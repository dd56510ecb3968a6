"""Shared fixtures: a real OTLP receiver (both protocols) and an environment free of OTEL_ settings."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest

from otlp_receiver import OtlpReceiver


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "flops: FLOPs counts, also run by .ci/run at the dependency floors (.ci/floors.txt) and the newest",
    )


@pytest.fixture
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Remove every ``OTEL_*`` variable, so the developer's shell cannot change a test's outcome."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


@pytest.fixture
def make_otlp_receiver() -> Iterator[Callable[..., OtlpReceiver]]:
    """Factory: ``make_otlp_receiver("grpc", start=False)``; every receiver is stopped at teardown."""
    receivers: list[OtlpReceiver] = []

    def make(protocol: str, *, port: int | None = None, start: bool = True) -> OtlpReceiver:
        receiver = OtlpReceiver(protocol, port)
        receivers.append(receiver)
        return receiver.start() if start else receiver

    yield make
    for receiver in receivers:
        receiver.stop()


@pytest.fixture(params=["grpc", "http/protobuf"])
def otlp_receiver(
    request: pytest.FixtureRequest, make_otlp_receiver: Callable[..., OtlpReceiver]
) -> OtlpReceiver:
    """A running receiver, once per OTLP protocol."""
    protocol: str = request.param
    return make_otlp_receiver(protocol)


@pytest.fixture(autouse=True)
def _spool_in_tmp(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    """No test may spool undelivered spans into the developer's cache directory."""
    monkeypatch.setenv("YOLOSPAN_SPOOL_DIR", str(tmp_path / "spool"))

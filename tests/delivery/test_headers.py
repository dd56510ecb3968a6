"""Malformed OTLP header variables stop the command, naming the entry and never the value."""

from __future__ import annotations

import pytest

from yolospan.delivery.otlp import check_headers, otlp_exporter, otlp_metric_exporter
from yolospan.errors import UserError

SECRET = "s3cr3tTOKEN"


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key:{SECRET}", "entry 1 has no '='"),
        ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", f"a=b, c=d,{SECRET}", "entry 3 has no '='"),
        ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", f"bad key={SECRET}", "entry 1 has a key that is not a valid"),
        ("OTEL_EXPORTER_OTLP_HEADERS", f'k={SECRET}"', "entry 1 (key 'k') has a value with characters"),
    ],
)
def test_a_malformed_entry_is_named_and_its_value_never_shown(
    monkeypatch, clean_otel_env, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(UserError) as raised:
        check_headers()
    message = str(raised.value)
    assert message.startswith(f"{variable}: {problem}")
    assert SECRET not in message


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_every_exporter_checks_them_first(monkeypatch, clean_otel_env, protocol: str) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", f"x-api-key:{SECRET}")
    for make in (otlp_exporter, otlp_metric_exporter):
        with pytest.raises(UserError, match="OTEL_EXPORTER_OTLP_HEADERS: entry 1"):
            make(protocol)


def test_well_formed_headers_pass(monkeypatch, clean_otel_env) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", " authorization = Bearer%20abc , x-tenant=lab,,")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=a b c")  # spaces: the SDK allows them
    check_headers()

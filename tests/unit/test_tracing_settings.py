"""Tracing settings of the server and the gateway: off by default, bad values refused, and
what the provider is built from (service name, sampler) as the standard variables allow."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gateway import tracing as gateway_tracing
from gateway.settings import Settings as GatewaySettings
from gateway.settings import SettingsError
from learnflow import tracing
from learnflow.settings import Settings


def test_tracing_is_off_by_default_and_configure_installs_nothing() -> None:
    settings = Settings.from_env({})
    assert settings.tracing == "off"
    assert tracing.configure(settings) is None
    assert tracing.tracer() is None
    assert tracing.mongo_listeners() == []
    gateway = GatewaySettings.from_env({})
    assert gateway.tracing == "off"
    assert gateway_tracing.configure(gateway.tracing) is None


def test_the_server_names_bad_tracing_values() -> None:
    bad = Settings.from_env({"LEARNFLOW_TRACING": "jaeger", "LEARNFLOW_TRACE_SAMPLE_RATIO": "2"})
    problems = " ".join(bad.problems())
    assert "LEARNFLOW_TRACING='jaeger' is not one of off, otlp" in problems
    assert "LEARNFLOW_TRACE_SAMPLE_RATIO must be between 0 and 1" in problems
    good = Settings.from_env({"LEARNFLOW_TRACING": "otlp", "LEARNFLOW_TRACE_SAMPLE_RATIO": "0.1"})
    assert good.problems() == []


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TRACING", "zipkin", "LEARNFLOW_GATEWAY_TRACING must be one of off, otlp"),
        ("TRUST_TRACEPARENT", "some", "LEARNFLOW_GATEWAY_TRUST_TRACEPARENT must be one of"),
        ("TRACE_SAMPLE_RATIO", "1.5", "LEARNFLOW_GATEWAY_TRACE_SAMPLE_RATIO must be between"),
        ("TRACE_SAMPLE_RATIO", "-1", "LEARNFLOW_GATEWAY_TRACE_SAMPLE_RATIO must not be negative"),
    ],
)
def test_the_gateway_refuses_bad_tracing_values(name: str, value: str, message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        GatewaySettings.from_env({f"LEARNFLOW_GATEWAY_{name}": value})


def test_the_gateway_reads_its_tracing_settings() -> None:
    settings = GatewaySettings.from_env(
        {
            "LEARNFLOW_GATEWAY_TRACING": "otlp",
            "LEARNFLOW_GATEWAY_OTLP_ENDPOINT": "http://collector:4317",
            "LEARNFLOW_GATEWAY_TRACE_SAMPLE_RATIO": "0.25",
            "LEARNFLOW_GATEWAY_TRACE_SERVICE_NAME": "edge",
            "LEARNFLOW_GATEWAY_TRUST_TRACEPARENT": "none",
        }
    )
    assert (settings.tracing, settings.otlp_endpoint) == ("otlp", "http://collector:4317")
    assert (settings.trace_sample_ratio, settings.trace_service_name) == (0.25, "edge")
    assert settings.trust_traceparent == "none"


def test_the_provider_takes_the_service_name_and_ratio_unless_otel_variables_say() -> None:
    ours = tracing.make_provider("learnflow-server", 0.25, InMemorySpanExporter(), environ={})
    assert ours.resource.attributes["service.name"] == "learnflow-server"
    assert "TraceIdRatioBased{0.25}" in ours.sampler.get_description()
    ours.shutdown()
    theirs = tracing.make_provider(
        "learnflow-server",
        0.25,
        InMemorySpanExporter(),
        environ={"OTEL_SERVICE_NAME": "x", "OTEL_TRACES_SAMPLER": "always_off"},
    )
    # The SDK read the sampler itself (from the process environment, unset here: its default).
    assert "TraceIdRatioBased" not in theirs.sampler.get_description()
    theirs.shutdown()


def test_a_root_linked_to_a_sampled_span_is_sampled_whatever_the_ratio() -> None:
    from opentelemetry.sdk.trace.sampling import Decision
    from opentelemetry.trace import Link, SpanContext, TraceFlags

    sampler = tracing.sampler(0.0)
    sample = Decision.RECORD_AND_SAMPLE
    sampled = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    unsampled = SpanContext(1, 2, is_remote=True, trace_flags=TraceFlags(0))
    assert sampler.should_sample(None, 5, "batch", links=[Link(sampled)]).decision is sample
    assert sampler.should_sample(None, 5, "batch", links=[Link(unsampled)]).decision is not sample
    assert sampler.should_sample(None, 5, "batch").decision is not sample

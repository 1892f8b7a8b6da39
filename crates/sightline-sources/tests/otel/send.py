"""Sends spans and logs to sightline with the real OpenTelemetry Python SDK.

Usage: send.py ENDPOINT PROTOCOL TAG   (PROTOCOL: protobuf | json)
Driven by tests/otlp.rs, which installs the SDK and exporters into a venv first.
"""
import logging
import sys

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor

try:
    from opentelemetry.sdk._logs import LoggingHandler
except ImportError:  # newer SDKs moved it
    from opentelemetry.instrumentation.logging.handler import LoggingHandler  # type: ignore

endpoint, protocol, tag = sys.argv[1], sys.argv[2], sys.argv[3]

if protocol == "protobuf":
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter

    span_exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces", compression=Compression.Gzip)
    log_exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")
else:
    from opentelemetry.exporter.otlp.json.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.otlp.json.http._log_exporter import OTLPLogExporter

    span_exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
    log_exporter = OTLPLogExporter(endpoint=f"{endpoint}/v1/logs")

resource = Resource.create({"service.name": f"otel-test-{protocol}", "test.tag": tag})

tracer_provider = TracerProvider(resource=resource)
tracer_provider.add_span_processor(SimpleSpanProcessor(span_exporter))
tracer = tracer_provider.get_tracer("sightline.test")
with tracer.start_as_current_span("invoke_agent planner") as agent:
    agent.set_attribute("gen_ai.operation.name", "invoke_agent")
    agent.set_attribute("gen_ai.agent.name", "planner")
    agent.set_attribute("gen_ai.conversation.id", f"conv-{tag}")
    with tracer.start_as_current_span("execute_tool grep") as tool:
        tool.set_attribute("gen_ai.operation.name", "execute_tool")
        tool.set_attribute("gen_ai.tool.name", "grep")
        tool.set_attribute("gen_ai.tool.call.id", f"call-{tag}")
        tool.set_attribute("gen_ai.conversation.id", f"conv-{tag}")
        tool.set_attribute("test.tag", tag)
        tool.set_attribute("db.password", "hunter2-span-secret")
    with tracer.start_as_current_span("chat model") as chat:
        chat.set_attribute("gen_ai.operation.name", "chat")
        chat.set_attribute("gen_ai.request.model", "claude-sonnet-4-5")
        chat.set_attribute("gen_ai.usage.input_tokens", 120)
        chat.set_attribute("gen_ai.usage.output_tokens", 30)
        chat.set_attribute("gen_ai.conversation.id", f"conv-{tag}")
# A plain (non-GenAI) trace: the SDK exports the child when it ends, before its parent.
with tracer.start_as_current_span(f"GET /orders {tag}") as root:
    root.set_attribute("http.route", "/orders")
    with tracer.start_as_current_span("db.query") as q:
        q.set_attribute("db.statement", "select 1")
print("plain trace", format(root.get_span_context().trace_id, "032x"))
tracer_provider.shutdown()

logger_provider = LoggerProvider(resource=resource)
logger_provider.add_log_record_processor(SimpleLogRecordProcessor(log_exporter))
handler = LoggingHandler(level=logging.INFO, logger_provider=logger_provider)
log = logging.getLogger(f"sightline.test.{protocol}")
log.setLevel(logging.INFO)
log.addHandler(handler)
log.warning(
    "disk almost full on %s",
    "/dev/sda1",
    extra={"test.tag": tag, "session.id": f"conv-{tag}", "nested_env": "API_KEY=sk-ant-api03-abcdefghijklmnopqrstuvwx"},
)
log.info(
    "claude_code.api_request",
    extra={
        "event.name": "api_request",
        "session.id": f"conv-{tag}",
        "model": "claude-sonnet-4-5-20250929",
        "cost_usd": 0.0123,
        "input_tokens": 1000,
        "output_tokens": 200,
        "cache_read_tokens": 50,
        "cache_creation_tokens": 10,
        "request_id": f"req_{tag}",
        "test.tag": tag,
    },
)
logger_provider.shutdown()
print("sent", protocol, tag)

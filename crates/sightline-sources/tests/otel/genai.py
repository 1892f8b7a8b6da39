"""Sends OpenTelemetry GenAI traces to sightline with the real OpenTelemetry Python SDK.

Usage: genai.py ENDPOINT TAG
Driven by tests/otlp.rs (`genai_traces_are_nested_runs`), which installs the SDK and the OTLP
protobuf exporter into a venv first. Prints one line per trace: `trace NAME TRACE_ID`.

Two traces of conversation `conv-TAG` (the conversation id only on each root `invoke_agent`
span, as agent frameworks set it) go through a BatchSpanProcessor, flushed after each: the
agent `planner` calls `chat`, `execute_tool grep`, and a nested agent `researcher` with its own
`chat` and `execute_tool fetch`. A third trace goes through a SimpleSpanProcessor, which exports
each span as it ends, children before their root.
"""
import sys

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

endpoint, tag = sys.argv[1], sys.argv[2]
conversation = f"conv-{tag}"


def agent_turn(tracer, name, with_conversation=True):
    with tracer.start_as_current_span(f"invoke_agent planner {name}") as root:
        root.set_attribute("gen_ai.operation.name", "invoke_agent")
        root.set_attribute("gen_ai.agent.name", "planner")
        if with_conversation:
            root.set_attribute("gen_ai.conversation.id", conversation)
        with tracer.start_as_current_span("chat") as chat:
            chat.set_attribute("gen_ai.operation.name", "chat")
            chat.set_attribute("gen_ai.request.model", "mock-model")
            chat.set_attribute("gen_ai.usage.input_tokens", 100)
            chat.set_attribute("gen_ai.usage.output_tokens", 10)
        with tracer.start_as_current_span("execute_tool grep") as tool:
            tool.set_attribute("gen_ai.operation.name", "execute_tool")
            tool.set_attribute("gen_ai.tool.name", "grep")
            tool.set_attribute("gen_ai.tool.call.id", f"call-grep-{name}-{tag}")
        with tracer.start_as_current_span("invoke_agent researcher") as sub:
            sub.set_attribute("gen_ai.operation.name", "invoke_agent")
            sub.set_attribute("gen_ai.agent.name", "researcher")
            with tracer.start_as_current_span("chat") as chat:
                chat.set_attribute("gen_ai.operation.name", "chat")
                chat.set_attribute("gen_ai.request.model", "mock-model")
                chat.set_attribute("gen_ai.usage.input_tokens", 7)
                chat.set_attribute("gen_ai.usage.output_tokens", 3)
            with tracer.start_as_current_span("execute_tool fetch") as tool:
                tool.set_attribute("gen_ai.operation.name", "execute_tool")
                tool.set_attribute("gen_ai.tool.name", "fetch")
                tool.set_attribute("gen_ai.tool.call.id", f"call-fetch-{name}-{tag}")
    print("trace", name, format(root.get_span_context().trace_id, "032x"), flush=True)


resource = Resource.create({"service.name": f"genai-test-{tag}"})
exporter = OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")
batched = TracerProvider(resource=resource)
batched.add_span_processor(BatchSpanProcessor(exporter))
tracer = batched.get_tracer("sightline.genai.test")
agent_turn(tracer, "one")
batched.force_flush()
agent_turn(tracer, "two")
batched.force_flush()
batched.shutdown()

simple = TracerProvider(resource=resource)
simple.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{endpoint}/v1/traces")))
agent_turn(simple.get_tracer("sightline.genai.test"), "simple")
simple.shutdown()

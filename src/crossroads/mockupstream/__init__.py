"""A fault-injecting mock upstream speaking the OpenAI Chat Completions wire format, for the
gateway's tests and load tests. Each request's behaviour is scripted (`mock:status=503`,
`x-mock-script: drip=0.05`, a script queue, seeded fault mixes); see `parse_script`."""

from crossroads.mockupstream.cli import main
from crossroads.mockupstream.script import Script, ScriptError, parse_script
from crossroads.mockupstream.server import MockUpstream, RequestRecord
from crossroads.mockupstream.threaded import MockUpstreamThread, run_in_thread

__all__ = [
    "MockUpstream",
    "MockUpstreamThread",
    "RequestRecord",
    "Script",
    "ScriptError",
    "main",
    "parse_script",
    "run_in_thread",
]

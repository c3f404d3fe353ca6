"""The official JS SDK (`openai` from npm) runs assistants too, polled and streamed:
tests/js/*.test.mjs, run by node's test runner against the dev host, with the model answering
from the request it gets."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from typing import Any

import pytest

from tests.model_server import ModelServer, Reply, call, text, tool_calls
from tests.support import API_KEYS, API_VERSION, ROOT, DevHost


def answer(body: dict[str, Any]) -> Reply:
    last = body["messages"][-1]
    if last["role"] == "tool":
        return text(f"Done: {last['content']}")
    if body.get("tools"):
        return tool_calls(call("get_weather", {"city": "Paris"}), call("get_weather", {"city": "Oslo"}))
    return text("Hello from JS")


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_js_sdk_runs_assistants(devhost: DevHost, model: ModelServer) -> None:
    model.respond_with(answer)
    env = dict(
        os.environ,
        ASSISTANTS_API_URL=devhost.api_url,
        ASSISTANTS_AZURE_ENDPOINT=devhost.base_url,
        ASSISTANTS_API_KEY=API_KEYS[0],
        ASSISTANTS_API_VERSION=API_VERSION,
    )
    tests = sorted(str(p) for p in (ROOT / "tests" / "js").glob("*.test.mjs"))
    result = subprocess.run(
        ["node", "--test", "--test-reporter=spec", *tests],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    passed = re.search(r"\bpass (\d+)", result.stdout)
    assert passed is not None and int(passed.group(1)) == 16, result.stdout  # 8 tests x 2 clients
    assert re.search(r"\bfail 0\b", result.stdout), result.stdout

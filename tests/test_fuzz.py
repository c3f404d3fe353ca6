"""Fuzzing every endpoint from Azure's own spec: whatever schemathesis sends, valid or not, the
answer is never a server error.

The spec is Azure's 2024-08-01-preview, cut to assistants, threads and messages by
scripts/cut_spec.py. Examples per operation: FUZZ_EXAMPLES (`make test` runs a few, `make fuzz`
many), with a fixed seed so a failure repeats.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.support import API_KEYS, DevHost

SPEC = Path(__file__).parent / "fuzz" / "assistants-2024-08-01-preview.json"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))

schema = schemathesis.openapi.from_dict(json.loads(SPEC.read_text()))
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE])


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_no_request_gets_a_server_error(case: schemathesis.Case[Any], devhost: DevHost) -> None:
    case.call_and_validate(
        base_url=devhost.api_url, headers={"api-key": API_KEYS[0]}, checks=[not_a_server_error]
    )

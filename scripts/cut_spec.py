"""Cut Azure's 2024-08-01-preview inference spec down to what this service serves, for fuzzing.

    python scripts/cut_spec.py ../shared/spec/azure-openai-2024-08-01-preview-inference.json \
        > tests/fuzz/assistants-2024-08-01-preview.json

Keeps the assistants, threads and messages paths, adds the message DELETE the spec lacks, pins
`api-version` to one supported value, drops `x-ms-examples` (files not shipped here), keeps only
the schemas those paths reach, and notes the source in `info`.
"""

from __future__ import annotations

import copy
import json
import sys
from typing import Any

PATHS = [
    "/assistants",
    "/assistants/{assistant_id}",
    "/threads",
    "/threads/{thread_id}",
    "/threads/{thread_id}/messages",
    "/threads/{thread_id}/messages/{message_id}",
]
API_VERSION = "2024-08-01-preview"


def cut(spec: dict[str, Any]) -> dict[str, Any]:
    paths = {path: copy.deepcopy(spec["paths"][path]) for path in PATHS}
    message = paths["/threads/{thread_id}/messages/{message_id}"]
    message["delete"] = {
        "operationId": "Delete_Message",
        "summary": "Deletes a message.",
        "parameters": copy.deepcopy(message["get"]["parameters"]),
        "responses": {
            "200": {
                "description": "OK",
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/deleteMessageResponse"}}
                },
            }
        },
    }
    for operations in paths.values():
        for operation in operations.values():
            operation.pop("x-ms-examples", None)
            for parameter in operation.get("parameters", []):
                if parameter.get("name") == "api-version":
                    parameter["schema"] = {"type": "string", "enum": [API_VERSION]}
    info = dict(spec["info"])
    info["description"] = (
        "Cut from Azure/azure-rest-api-specs specification/cognitiveservices/data-plane/AzureOpenAI/"
        f"inference/preview/{API_VERSION}/inference.json (MIT) by scripts/cut_spec.py: assistants, "
        "threads and messages only, message DELETE added, api-version pinned."
    )
    components = {
        "schemas": _reachable(paths, spec["components"]["schemas"]),
        "securitySchemes": {"apiKey": spec["components"]["securitySchemes"]["apiKey"]},
    }
    return {
        "openapi": spec["openapi"],
        "info": info,
        "servers": [{"url": "/openai"}],
        "security": [{"apiKey": []}],
        "paths": paths,
        "components": components,
    }


def _reachable(root: Any, schemas: dict[str, Any]) -> dict[str, Any]:
    """The schemas `root` refers to, directly or through other schemas."""
    prefix = "#/components/schemas/"
    found: dict[str, Any] = {}
    pending = [root]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith(prefix) and ref[len(prefix) :] not in found:
                name = ref[len(prefix) :]
                found[name] = schemas[name]
                pending.append(schemas[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return dict(sorted(found.items()))


if __name__ == "__main__":
    with open(sys.argv[1]) as source:
        json.dump(cut(json.load(source)), sys.stdout, indent=1)
        sys.stdout.write("\n")

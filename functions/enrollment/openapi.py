"""Print the enrollment API's OpenAPI document: `make openapi` writes it to docs/openapi.json."""

from __future__ import annotations

import json

from functions.enrollment.app import openapi_document


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")

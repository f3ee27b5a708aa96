"""Reading JSON request bodies within ``http_server.max_body``."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request

__all__ = ["BodyTooLarge", "InvalidJson", "read_body", "read_json"]


class BodyTooLarge(Exception):
    """The body is larger than ``max_body``."""


class InvalidJson(Exception):
    """The body is empty, not UTF-8 or not valid JSON."""


async def read_body(request: Request, max_body: int) -> bytes:
    """The raw body, never reading past ``max_body`` bytes (else BodyTooLarge)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_body:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_body:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, max_body: int) -> Any:
    """The body parsed as JSON, never reading past ``max_body`` bytes."""
    raw = await read_body(request, max_body)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise InvalidJson from exc

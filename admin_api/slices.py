"""Long requests share the event loop: their work runs in time slices, so MQTT clients and
other requests are served in between (a 1 MB publish_batch would otherwise hold the loop for
a quarter of a second)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

from starlette.responses import Response

__all__ = ["SLICE_SECONDS", "TimeSlices", "decode_json", "in_slices", "ok_in_slices"]

T = TypeVar("T")
SLICE_SECONDS = 0.002
"""Longest stretch a long request runs before letting other work have the loop."""

_SPACE = re.compile(r"[ \t\n\r]*")
_DECODER = json.JSONDecoder()


class TimeSlices:
    """Gives the event loop away once ``budget`` seconds have passed since it last did."""

    def __init__(self, budget: float = SLICE_SECONDS) -> None:
        self._budget = budget
        self._deadline = time.perf_counter() + budget

    async def pause(self) -> None:
        """Let other work run if this slice is used up."""
        if time.perf_counter() >= self._deadline:
            await asyncio.sleep(0)
            self._deadline = time.perf_counter() + self._budget


async def in_slices(items: Iterable[T]) -> AsyncIterator[T]:
    """``items`` one by one, in time slices."""
    slices = TimeSlices()
    for item in items:
        yield item
        await slices.pause()


def _skip_space(text: str, index: int) -> int:
    found = _SPACE.match(text, index)
    assert found is not None  # matches the empty string anywhere
    return found.end()


async def decode_json(raw: bytes) -> Any:
    """``json.loads(raw)``, decoding a top-level array an item at a time, in time slices.

    Raises ValueError or RecursionError as ``json.loads`` does."""
    text = raw.decode(json.detect_encoding(raw), "surrogatepass")  # as json.loads decodes bytes
    index = _skip_space(text, 0)
    if not text.startswith("[", index):
        return json.loads(text)
    items: list[Any] = []
    index = _skip_space(text, index + 1)
    if text.startswith("]", index):
        index += 1
    else:
        slices = TimeSlices()
        while True:
            item, index = _DECODER.raw_decode(text, index)
            items.append(item)
            index = _skip_space(text, index)
            if text.startswith("]", index):
                index += 1
                break
            if not text.startswith(",", index):
                raise ValueError(f"expected ',' or ']' at character {index}")
            index = _skip_space(text, index + 1)
            await slices.pause()
    if _skip_space(text, index) != len(text):
        raise ValueError(f"extra data after the array at character {index}")
    return items


def _json(value: Any) -> bytes:
    """``value`` encoded as Starlette's JSONResponse encodes it."""
    return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")


async def ok_in_slices(data: Iterable[Any], chunk: int = 500) -> Response:
    """``{"code":0,"data":[...]}`` for a long list, encoded ``chunk`` items at a time, in time slices."""
    parts: list[bytes] = []
    items = iter(data)
    slices = TimeSlices()
    while batch := list(itertools.islice(items, chunk)):
        parts.append(_json(batch)[1:-1])
        await slices.pause()
    return Response(b'{"code":0,"data":[' + b",".join(parts) + b"]}", media_type="application/json")

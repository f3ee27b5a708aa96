"""Time-sliced JSON decoding and encoding agree with the json module and Starlette's JSONResponse."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.responses import JSONResponse

from admin_api.slices import decode_json, ok_in_slices
from tests.api_fuzz import json_values

SLICED = settings(max_examples=100, derandomize=True, database=None, deadline=None)
spaces = st.text(" \t\n\r", max_size=3)


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for every example of a module (a new loop per example costs more than it)."""
    with asyncio.Runner() as loop_runner:
        yield loop_runner


def decoded(runner: asyncio.Runner, raw: bytes) -> tuple[str, Any]:
    """("ok", value) or ("error", None) for decode_json."""
    try:
        return "ok", runner.run(decode_json(raw))
    except (ValueError, RecursionError):
        return "error", None


def loaded(raw: bytes) -> tuple[str, Any]:
    """("ok", value) or ("error", None) for json.loads."""
    try:
        return "ok", json.loads(raw)
    except (ValueError, RecursionError):
        return "error", None


def same(a: tuple[str, Any], b: tuple[str, Any]) -> bool:
    """Equal, NaN included (compared through its JSON text)."""
    return json.dumps(a) == json.dumps(b)


@SLICED
@given(st.lists(st.tuples(spaces, json_values, spaces), max_size=6), spaces, spaces)
def test_arrays_with_any_spacing_decode_as_json_loads(
    runner: asyncio.Runner, items: list[tuple[str, Any, str]], before: str, after: str
) -> None:
    """A top-level array, however spaced, decodes to what json.loads gives."""
    inner = ",".join(f"{left}{json.dumps(value)}{right}" for left, value, right in items)
    raw = f"{before}[{inner}]{after}".encode()
    assert same(decoded(runner, raw), loaded(raw))


@SLICED
@given(st.binary(max_size=40) | st.text(' []{},:"0123456789tfnul-.eE\\', max_size=30).map(str.encode))
def test_any_bytes_decode_or_fail_as_json_loads(runner: asyncio.Runner, raw: bytes) -> None:
    """Any bytes decode to json.loads' value, or fail where it fails."""
    assert same(decoded(runner, raw), loaded(raw))


@pytest.mark.parametrize(
    "raw",
    [b"[1,]", b"[1 2]", b"[1]x", b"[", b"[1", b"[,1]", b"\xef\xbb\xbf[1]", "[1]".encode("utf-16"), b"[" * 100_000],
)
def test_edge_cases_agree_with_json_loads(runner: asyncio.Runner, raw: bytes) -> None:
    """Trailing commas, missing separators, extra data, BOMs, UTF-16 and deep nesting agree with json.loads."""
    assert same(decoded(runner, raw), loaded(raw))


@SLICED
@given(st.lists(json_values.filter(lambda v: "NaN" not in json.dumps(v) and "Infinity" not in json.dumps(v))))
def test_sliced_answer_is_byte_for_byte_jsonresponse(runner: asyncio.Runner, data: list[Any]) -> None:
    """ok_in_slices encodes {"code":0,"data":[...]} exactly as JSONResponse does, in any chunk size."""
    try:
        expected = JSONResponse({"code": 0, "data": data}).body
    except UnicodeEncodeError:  # a lone surrogate: JSONResponse cannot encode it either
        return
    for chunk in (1, 2, 500):
        assert runner.run(ok_in_slices(data, chunk)).body == expected

"""v4 publish over HTTP and retained messages.

Every request is checked whole before anything is published. ``publish`` answers one error for
the first fault. ``publish_batch``: a body that is not an array, an item that is not an object,
or NaN or Infinity anywhere (Python's JSON reader takes them, JSON has no such numbers) is
400/108 for the whole request and nothing is published; otherwise each item gets the code a
single publish of it would get (0, 107, 108 or 115), in order, and only the items with 0 are
published. Long batches share the event loop with MQTT (``in_slices``).
"""

from __future__ import annotations

import base64
import binascii
import math
import time
from typing import Any, NamedTuple

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.publish_properties import PROPERTIES_SCHEMA, parse_properties
from admin_api.slices import in_slices, ok_in_slices
from admin_api.v4_common import V4Route, bad_parameter, json_body, ok, ok_paged
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.properties import Properties
from broker.mqtt.topics import is_system_topic, is_valid_topic_name

__all__ = ["PUBLISH_SCHEMA", "publish_routes"]

_ENCODINGS = ("plain", "base64")
_STRING_FIELDS = ("topic", "topics", "payload", "clientid")
PUBLISH_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {"type": "string", "description": "topic name: 1 to 65 535 bytes, no wildcard, not $SYS/"},
        "topics": {"type": "string", "description": "several topic names, comma-separated (when no topic)"},
        "payload": {"type": "string", "description": "the payload, as UTF-8 text or base64 (see encoding)"},
        "qos": {"type": "integer", "enum": [0, 1, 2], "default": 0},
        "retain": {"type": "boolean", "default": False},
        "clientid": {"type": "string", "description": "counted as this client's publish (send_msg)"},
        "encoding": {"type": "string", "enum": list(_ENCODINGS), "default": "plain"},
        "decoding": {"type": "string", "enum": list(_ENCODINGS), "description": "NanoMQ's name for encoding"},
        "properties": PROPERTIES_SCHEMA,
    },
    "required": ["payload"],
    "anyOf": [{"required": ["topic"]}, {"required": ["topics"]}],
    "additionalProperties": False,
}
_BODY_ERRORS = (
    (400, ResultCode.MISSING_PARAMETER),
    (400, ResultCode.INVALID_JSON),
    (400, ResultCode.ILLEGAL_TOPIC),
)


_TOPIC_ERRORS = ((400, ResultCode.MISSING_PARAMETER), (404, ResultCode.UNKNOWN_ERROR))


def _no_retained() -> ApiError:
    return ApiError(404, ResultCode.UNKNOWN_ERROR, message="no retained message on this topic")


def _topic_parameter(request: Request) -> str:
    """The ``topic`` query parameter of the retained message endpoints, or 400/107."""
    topic = request.query_params.get("topic")
    if topic is None:
        raise ApiError(400, ResultCode.MISSING_PARAMETER, message="topic is required")
    return topic


def _byte_limit(request: Request) -> int | None:
    """``?max_bytes=``: at most this many payload bytes in the answer (a page shows only the
    start of a big payload), a whole number from 0; absent, the whole payload; else 400/108."""
    text = request.query_params.get("max_bytes")
    if text is None:
        return None
    if not (text.isascii() and text.isdigit() and len(text) <= 12):
        raise bad_parameter("max_bytes must be a whole number from 0")
    return int(text)


class Publish(NamedTuple):
    """One checked publish body: every topic it names and the message."""

    topics: list[str]
    payload: bytes
    qos: int
    retain: bool
    client_id: str | None
    properties: Properties | None = None
    """MQTT 5 properties for MQTT 5 subscribers."""


def _illegal_topic(topic: str) -> ApiError | None:
    if is_system_topic(topic):
        return ApiError(400, ResultCode.ILLEGAL_TOPIC, message="$SYS topics are the broker's own")
    if not is_valid_topic_name(topic):
        message = "illegal topic name: empty, a wildcard (+ or #), U+0000, not UTF-8 or over 65535 bytes"
        return ApiError(400, ResultCode.ILLEGAL_TOPIC, message=message)
    return None


def _payload(text: str, encoding: str) -> bytes:
    try:
        if encoding == "base64":
            return base64.b64decode(text, validate=True)
        return text.encode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise bad_parameter(f"payload is not valid {'base64' if encoding == 'base64' else 'Unicode text'}") from None


def parse_publish(item: object) -> Publish:
    """One publish body checked against every rule, or the ApiError a single publish answers."""
    if not isinstance(item, dict):
        raise bad_parameter("a publish is a JSON object")
    unknown = sorted(set(item) - set(PUBLISH_SCHEMA["properties"]))
    if unknown:
        raise bad_parameter(f"unknown field {unknown[0]!r}")
    if ("topic" not in item and "topics" not in item) or "payload" not in item:
        raise ApiError(400, ResultCode.MISSING_PARAMETER, message="topic (or topics) and payload are required")
    for name in _STRING_FIELDS:
        if name in item and not isinstance(item[name], str):
            raise bad_parameter(f"{name} must be a string")
    qos, retain = item.get("qos", 0), item.get("retain", False)
    encoding = item.get("encoding", item.get("decoding", "plain"))
    if type(qos) is not int or qos not in (0, 1, 2):
        raise bad_parameter("qos must be 0, 1 or 2")
    if not isinstance(retain, bool):
        raise bad_parameter("retain must be true or false")
    if encoding not in _ENCODINGS:
        raise bad_parameter("encoding must be plain or base64")
    topics = [item["topic"]] if "topic" in item else item["topics"].split(",")
    for topic in topics:
        if (illegal := _illegal_topic(topic)) is not None:
            raise illegal
    payload = _payload(item["payload"], encoding)
    properties = None
    if "properties" in item:
        try:
            properties = parse_properties(item["properties"], payload)
        except ValueError as error:
            raise bad_parameter(str(error)) from None
    return Publish(topics, payload, qos, retain, item.get("clientid"), properties)


def _non_finite(value: object) -> bool:
    """Whether ``value`` holds NaN or an infinity anywhere."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _shown_topic(item: dict[str, Any]) -> str | None:
    """The item's topic as its result shows it; a lone surrogate is written as ``\\udxxx`` text."""
    topic = item.get("topic", item.get("topics"))
    if not isinstance(topic, str):
        return None
    return topic.encode("utf-8", "backslashreplace").decode("utf-8")


async def _check_batch(items: object) -> list[tuple[str | None, Publish | ApiError]]:
    """(shown topic, the checked publish or its error) of every item; 400/108 for the whole batch."""
    if not isinstance(items, list):
        raise bad_parameter("publish_batch takes a JSON array of publish objects")
    checked: list[tuple[str | None, Publish | ApiError]] = []
    async for index, item in in_slices(enumerate(items)):
        if not isinstance(item, dict):
            raise bad_parameter(f"item {index} is not a JSON object: nothing was published")
        try:
            checked.append((_shown_topic(item), parse_publish(item)))
        except ApiError as error:
            if _non_finite(item):
                raise bad_parameter(f"item {index} holds NaN or Infinity: nothing was published") from None
            checked.append((_shown_topic(item), error))
    return checked


def publish_routes(ctx: ApiContext) -> list[V4Route]:
    """The route table rows of publishing and retained messages."""

    async def send(message: Publish) -> None:
        # the expiry interval runs from when the broker takes the message, as for an MQTT PUBLISH
        carried = MessageProperties.from_properties(message.properties, time.time()) if message.properties else None
        for topic in message.topics:
            await ctx.control.publish(
                topic,
                message.payload,
                message.qos,
                retain=message.retain,
                client_id=message.client_id,
                properties=carried,
            )

    async def publish(request: Request) -> JSONResponse:
        body = await json_body(request, ctx)
        try:
            message = parse_publish(body)
        except ApiError:
            if _non_finite(body):
                raise bad_parameter("NaN and Infinity are not JSON numbers") from None
            raise
        await send(message)
        return ok()

    async def publish_batch(request: Request) -> Response:
        checked = await _check_batch(await json_body(request, ctx))
        async for _, outcome in in_slices(checked):
            if isinstance(outcome, Publish):
                await send(outcome)
        return await ok_in_slices(
            {"topic": topic, "code": int(outcome.code if isinstance(outcome, ApiError) else ResultCode.OK)}
            for topic, outcome in checked
        )

    async def retained(request: Request) -> JSONResponse:
        rows = [{"topic": t, "qos": q, "payload_size": size} for t, q, size in sorted(ctx.control.retained_messages())]
        return ok_paged(request.query_params, rows)

    async def retained_message(request: Request) -> JSONResponse:
        topic = _topic_parameter(request)
        limit = _byte_limit(request)
        found = ctx.control.retained_message(topic)
        if found is None:
            raise _no_retained()
        qos, payload = found
        return ok({"topic": topic, "qos": qos, "payload_size": len(payload),
                   "payload": base64.b64encode(payload[:limit]).decode("ascii")})  # fmt: skip

    async def delete_retained(request: Request) -> JSONResponse:
        if not ctx.control.delete_retained(_topic_parameter(request)):
            raise _no_retained()
        return ok()

    batch_schema = {"type": "array", "items": PUBLISH_SCHEMA}
    return [
        V4Route("/mqtt/publish", "mqtt_publish", "POST", "publish a message (base64 payloads with encoding)", publish,
                body=PUBLISH_SCHEMA, errors=_BODY_ERRORS),
        V4Route("/mqtt/publish_batch", "mqtt_publish_batch", "POST", "publish several, one result each",
                publish_batch, body=batch_schema, errors=_BODY_ERRORS),
        V4Route("/mqtt/retained", "list_retained", "GET", "retained messages, paged", retained, paged=True),
        V4Route("/mqtt/retained", "delete_retained", "DELETE", "remove the retained message of ?topic=",
                delete_retained, params=("topic",), errors=_TOPIC_ERRORS),
        V4Route("/mqtt/retained/message", "get_retained", "GET", "the retained message of ?topic=, payload in base64",
                retained_message, params=("topic", "max_bytes"), errors=_TOPIC_ERRORS),
    ]  # fmt: skip

"""v4 publish over HTTP and retained messages."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.v4_common import bad_parameter, json_body, ok, ok_paged, query
from broker.topics import is_system_topic, is_valid_topic_name

__all__ = ["publish_routes"]

Endpoint = Callable[[Request], Any]
_FIELDS = {"topic", "topics", "payload", "qos", "retain", "clientid", "encoding", "decoding", "properties"}


def _parse(item: object) -> tuple[list[str], bytes, int, bool, str | None]:
    """(topics, payload, qos, retain, clientid) of one publish body, or the ApiError."""
    if not isinstance(item, dict) or set(item) - _FIELDS or "properties" in item:
        raise bad_parameter()  # MQTT 5 properties: the broker speaks MQTT 3.1.1
    if ("topic" not in item and "topics" not in item) or "payload" not in item:
        raise ApiError(400, ResultCode.MISSING_PARAMETER)
    raw_topics = item.get("topic", item.get("topics"))
    payload, qos, retain = item["payload"], item.get("qos", 0), item.get("retain", False)
    client_id, encoding = item.get("clientid"), item.get("encoding", item.get("decoding", "plain"))
    if not isinstance(raw_topics, str) or not isinstance(payload, str) or not isinstance(retain, bool):
        raise bad_parameter()
    if type(qos) is not int or qos not in (0, 1, 2) or encoding not in ("plain", "base64"):
        raise bad_parameter()
    if client_id is not None and not isinstance(client_id, str):
        raise bad_parameter()
    topics = raw_topics.split(",") if "topics" in item and "topic" not in item else [raw_topics]
    if not all(is_valid_topic_name(t) and not is_system_topic(t) for t in topics):  # $SYS is the broker's
        raise ApiError(400, ResultCode.ILLEGAL_TOPIC)
    if encoding == "base64":
        try:
            data = base64.b64decode(payload, validate=True)
        except (binascii.Error, ValueError):
            raise bad_parameter() from None
    else:
        data = payload.encode("utf-8")
    return topics, data, qos, retain, client_id


def publish_routes(ctx: ApiContext) -> list[tuple[str, str, str, str, Endpoint]]:
    """(path, name, method, description, endpoint) of publishing and retained messages."""

    async def publish_one(item: object) -> list[str]:
        topics, data, qos, retain, client_id = _parse(item)
        for topic in topics:
            await ctx.control.publish(topic, data, qos, retain=retain, client_id=client_id)
        return topics

    async def publish(request: Request) -> JSONResponse:
        query(request, ())
        await publish_one(await json_body(request, ctx))
        return ok()

    async def publish_batch(request: Request) -> JSONResponse:
        query(request, ())
        items = await json_body(request, ctx)
        if not isinstance(items, list):
            raise bad_parameter()
        results = []
        for item in items:
            topic = item.get("topic", item.get("topics")) if isinstance(item, dict) else None
            try:
                await publish_one(item)
                code = ResultCode.OK
            except ApiError as error:
                code = error.code
            results.append({"topic": topic, "code": int(code)})
        return ok(results)

    async def retained(request: Request) -> JSONResponse:
        params = query(request, (), True)
        rows = [{"topic": t, "qos": q, "payload_size": size} for t, q, size in sorted(ctx.control.retained_messages())]
        return ok_paged(params, rows)

    async def delete_retained(request: Request) -> JSONResponse:
        params = query(request, ("topic",))
        if "topic" not in params:
            raise ApiError(400, ResultCode.MISSING_PARAMETER)
        if not ctx.control.delete_retained(params["topic"]):
            raise ApiError(404, ResultCode.UNKNOWN_ERROR)
        return ok()

    return [
        ("/mqtt/publish", "mqtt_publish", "POST", "publish a message (base64 payloads with encoding)", publish),
        ("/mqtt/publish_batch", "mqtt_publish_batch", "POST", "publish several, one result each", publish_batch),
        ("/mqtt/retained", "list_retained", "GET", "retained messages, paged", retained),
        ("/mqtt/retained", "delete_retained", "DELETE", "remove the retained message of ?topic=", delete_retained),
    ]  # fmt: skip

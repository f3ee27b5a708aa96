"""v4 MQTT bridges: read them, change one, pause or resume it, add or remove remote subscriptions.

Bodies follow NanoMQ's: PUT ``{"<name>": {...}}`` (or the settings object itself), switch
``{"data": {"bridge_switch": bool}}``, sub ``{"data": {"subscription": [...]}}``, unsub
``{"data": {"unsubscription": [{"topic": ...}]}}``. Changes act on the running bridge only;
the configuration file is not written (v1 req 12 does that).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from admin_api.bridge_figures import bridge_figures
from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.v4_common import V4Route, bad_parameter, json_body, ok
from broker.bridges.bridge import BridgeStats
from broker.bridges.link import LinkError
from broker.config.bridge_settings import Bridges, Subscription
from broker.config.source import MASK, masked

__all__ = ["bridge_routes"]

_READ_ONLY = frozenset({"name", "state", "queued", "in_flight", "oldest_queued_age_s", "forwarded", "received",
                        "dropped", "last_error"})  # fmt: skip
"""Keys of a GET node that are not settings: a PUT may send them back, they are ignored."""

_SETTINGS_BODY: dict[str, Any] = {
    "type": "object",
    "description": 'the bridge\'s settings (bridges.mqtt.<name> keys), or {"<name>": {...settings}} as NanoMQ '
    'sends them; "******" as a secret keeps the current one; the node\'s read-only fields are ignored',
}
_SWITCH_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "object", "required": ["bridge_switch"],
                            "properties": {"bridge_switch": {"type": "boolean", "description": "false pauses"}}}},
}  # fmt: skip
_SUB_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "object", "required": ["subscription"], "properties": {"subscription": {
        "type": "array", "minItems": 1,
        "items": {"type": "object", "required": ["remote_topic"], "properties": {
            "remote_topic": {"type": "string"}, "local_topic": {"type": "string"},
            "qos": {"type": "integer", "minimum": 0, "maximum": 2}, "retain": {"enum": [True, False, None]},
            "prefix": {"type": "string"}, "suffix": {"type": "string"}}}}}}},
}  # fmt: skip
_UNSUB_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "object", "required": ["unsubscription"], "properties": {"unsubscription": {
        "type": "array", "minItems": 1,
        "items": {"type": "object", "required": ["topic"], "properties": {"topic": {"type": "string"}}}}}}},
}  # fmt: skip
_NODES: dict[str, Any] = {
    "type": "object",
    "required": ["code", "data"],
    "properties": {"code": {"const": 0}, "data": {"type": "object", "required": ["bridge"], "properties": {
        "bridge": {"type": "object", "required": ["nodes"], "properties": {"nodes": {"type": "array"}}}}}},
}  # fmt: skip


def _problems(error: ValidationError, prefix: str, skip: int = 0) -> str:
    """Pydantic's errors as ``prefix.key.path: reason`` (the first ``skip`` parts of each path left out), joined."""
    return "; ".join(
        ".".join([prefix, *(str(part) for part in problem["loc"][skip:])]).strip(".") + f": {problem['msg']}"
        for problem in error.errors()
    )


def _entries(body: Any, key: str) -> list[Any]:
    """The non-empty list ``data.<key>`` of a sub/unsub body (400/108 otherwise)."""
    entries = _data(body, key)
    if not isinstance(entries, list) or not entries:
        raise bad_parameter(f"data.{key} must be a non-empty list")
    return entries


def _unanswered(what: str) -> ApiError:
    """503: the upstream did not acknowledge ``what``."""
    return ApiError(503, ResultCode.UNKNOWN_ERROR, message=f"the upstream did not acknowledge {what}")


def _data(body: Any, key: str) -> Any:
    """``body["data"][key]``; anything else is 400/108 naming what is missing."""
    if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        raise bad_parameter('expected {"data": {...}}')
    data = body["data"]
    others = sorted(set(data) - {key})
    if others:
        raise bad_parameter(f"unknown key {others[0]!r} in data (MQTT 5 properties are not supported)")
    if key not in data:
        raise bad_parameter(f"data.{key} is missing")
    return data[key]


def _unmasked(sent: Any, current: Any) -> Any:
    """``sent`` with each ``******`` secret replaced by the current value at the same place."""
    if isinstance(sent, dict):
        here = current if isinstance(current, dict) else {}
        return {key: here.get(key) if value == MASK else _unmasked(value, here.get(key)) for key, value in sent.items()}
    return sent


def bridge_routes(ctx: ApiContext) -> list[V4Route]:
    """The route table rows of the bridge endpoints."""
    bridges = ctx.control.bridges

    def node(stats: BridgeStats) -> dict[str, Any]:
        settings = bridges.settings(stats.name)
        config = masked(settings.model_dump(mode="json")) if settings is not None else {"server": stats.server}
        return {"name": stats.name, **config, **bridge_figures(stats)}

    def named(request: Request) -> str:
        name: str = request.path_params["name"]
        if bridges.settings(name) is None:
            raise ApiError(404, ResultCode.UNKNOWN_ERROR, message=f"no bridge {name!r} runs")
        return name

    def answer(nodes: list[dict[str, Any]]) -> JSONResponse:
        return ok({"bridge": {"nodes": nodes}})

    async def list_bridges(request: Request) -> JSONResponse:
        return answer([node(stats) for stats in ctx.state.bridges()])

    async def one_bridge(request: Request) -> JSONResponse:
        name = named(request)
        return answer([node(stats) for stats in ctx.state.bridges() if stats.name == name])

    async def change(request: Request) -> JSONResponse:
        name = named(request)
        body = await json_body(request, ctx)
        if isinstance(body, dict) and list(body) == [name] and isinstance(body[name], dict):
            body = body[name]  # NanoMQ's {"<name>": {...}}
        if not isinstance(body, dict):
            raise bad_parameter("expected an object of the bridge's settings")
        if body.get("name", name) != name:
            raise bad_parameter(f"name {body['name']!r} is not the bridge of the path ({name!r})")
        if body.get("enable") is False:
            raise bad_parameter("enable = false: pause the bridge with POST /bridges/switch/<name> instead")
        current = bridges.settings(name)
        assert current is not None  # named() checked it
        sent = _unmasked({k: v for k, v in body.items() if k not in _READ_ONLY}, current.model_dump(mode="json"))
        try:
            settings = Bridges.model_validate({"mqtt": {name: sent}}).mqtt[name]
        except ValidationError as exc:
            raise bad_parameter(_problems(exc, "", skip=2)) from None
        try:
            changed = await bridges.change(name, settings)
        except ValueError as exc:  # e.g. a TLS file that cannot be read: the bridge runs on as it was
            raise bad_parameter(str(exc)) from None
        if not changed:
            raise ApiError(404, ResultCode.UNKNOWN_ERROR, message=f"no bridge {name!r} runs")
        return ok()

    async def switch(request: Request) -> JSONResponse:
        name = named(request)
        enable = _data(await json_body(request, ctx), "bridge_switch")
        if not isinstance(enable, bool):
            raise bad_parameter("data.bridge_switch must be true (resume) or false (pause)")
        bridges.pause(name, not enable)
        return ok()

    async def subscribe(request: Request) -> JSONResponse:
        name = named(request)
        rules = _entries(await json_body(request, ctx), "subscription")
        parsed = []
        for index, rule in enumerate(rules):
            try:
                parsed.append(Subscription.model_validate(rule))
            except ValidationError as exc:
                raise bad_parameter(_problems(exc, f"data.subscription.{index}")) from None
        try:
            await bridges.subscribe(name, parsed)
        except LinkError as exc:
            raise _unanswered(f"the subscription ({exc}); it is sent again at every connect") from None
        return ok()

    async def unsubscribe(request: Request) -> JSONResponse:
        name = named(request)
        entries = _entries(await json_body(request, ctx), "unsubscription")
        if not all(isinstance(e, dict) and set(e) == {"topic"} and isinstance(e["topic"], str) for e in entries):
            raise bad_parameter('each unsubscription is {"topic": "<remote topic filter>"}')
        try:
            await bridges.unsubscribe(name, [entry["topic"] for entry in entries])
        except LinkError as exc:
            raise _unanswered(f"the unsubscription ({exc}); it is not subscribed again") from None
        return ok()

    unknown = (404, ResultCode.UNKNOWN_ERROR)
    body_errors = ((400, ResultCode.PARAMETER_ERROR), (400, ResultCode.INVALID_JSON), unknown)
    upstream = (503, ResultCode.UNKNOWN_ERROR)
    return [
        V4Route("/bridges", "get_mqtt_bridges", "GET", "running bridges: settings (secrets masked) and state",
                list_bridges, answer=_NODES),
        V4Route("/bridges/{name}", "get_mqtt_bridge", "GET", "one bridge", one_bridge, errors=(unknown,),
                answer=_NODES),
        V4Route("/bridges/{name}", "put_mqtt_bridge", "PUT", "run a bridge with new settings, keeping its queue "
                "(the config file is not changed)", change, body=_SETTINGS_BODY, errors=body_errors),
        V4Route("/bridges/switch/{name}", "put_mqtt_bridge_switch", "POST", "pause or resume a bridge", switch,
                body=_SWITCH_BODY, errors=body_errors),
        V4Route("/bridges/sub/{name}", "post_mqtt_bridge_sub", "POST", "add remote subscriptions", subscribe,
                body=_SUB_BODY, errors=(*body_errors, upstream)),
        V4Route("/bridges/unsub/{name}", "post_mqtt_bridge_unsub", "POST", "remove remote subscriptions",
                unsubscribe, body=_UNSUB_BODY, errors=(*body_errors, upstream)),
    ]  # fmt: skip

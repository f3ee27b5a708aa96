"""v4 clients, subscriptions, topic tree and kick."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from admin_api.shapes import mqtt5_fields, topic_tree
from admin_api.v4_common import V4Route, bad_parameter, ok, ok_paged
from broker.state import ClientSnapshot

__all__ = ["client_object", "client_routes"]

_BOOLEAN = {"true": True, "false": False}
_CONN_STATES = {"connected": True, "disconnected": False}
_PROTO_NAMES = {3: "MQIsdp", 4: "MQTT", 5: "MQTT"}
_CLIENT_FILTERS = ("clientid", "username", "conn_state", "clean_start", "proto_name", "proto_ver")


def client_object(client: ClientSnapshot) -> dict[str, Any]:
    """A client as v4 shows it (spec section 3, "Client object")."""
    info = client.info
    shaped: dict[str, Any] = {
        "client_id": info.client_id,
        "username": info.username,
        "keepalive": info.keepalive,
        "conn_state": "connected" if client.connected else "disconnected",
        "clean_start": info.clean_start,
        "proto_name": _PROTO_NAMES.get(info.protocol, "MQTT"),
        "proto_ver": info.protocol,
    }
    if info.will_topic is not None:
        shaped["will_topic"] = info.will_topic
        shaped["will_msg"] = (info.will_message or b"").decode("utf-8", "replace")
    shaped.update(
        ip_address=info.ip_address,
        port=info.port,
        connected_at=info.connected_at_iso,
        recv_msg=client.messages_received,
        send_msg=client.messages_sent,
    )
    shaped.update(mqtt5_fields(info))
    return shaped


def _client_filter(params: Mapping[str, str]) -> Callable[[ClientSnapshot], bool]:
    """The client filters of GET /clients; a bad value is 400/108."""
    checks: list[Callable[[ClientSnapshot], bool]] = []
    if "clientid" in params:
        checks.append(lambda c: c.info.client_id == params["clientid"])
    if "username" in params:
        checks.append(lambda c: c.info.username == params["username"])
    if "conn_state" in params:
        wanted = _CONN_STATES.get(params["conn_state"])
        if wanted is None:
            raise bad_parameter("conn_state must be connected or disconnected")
        checks.append(lambda c: c.connected is wanted)
    if "clean_start" in params:
        clean = _BOOLEAN.get(params["clean_start"])
        if clean is None:
            raise bad_parameter("clean_start must be true or false")
        checks.append(lambda c: c.info.clean_start is clean)
    if "proto_name" in params:
        if params["proto_name"] not in ("MQTT", "MQIsdp"):
            raise bad_parameter("proto_name must be MQTT or MQIsdp")
        checks.append(lambda c: _PROTO_NAMES.get(c.info.protocol) == params["proto_name"])
    if "proto_ver" in params:
        if params["proto_ver"] not in ("3", "4", "5"):
            raise bad_parameter("proto_ver must be 3, 4 or 5")
        checks.append(lambda c: c.info.protocol == int(params["proto_ver"]))
    return lambda client: all(check(client) for check in checks)


def client_routes(ctx: ApiContext) -> list[V4Route]:
    """The route table rows of the client endpoints."""

    async def list_clients(request: Request) -> JSONResponse:
        params = request.query_params
        keep = _client_filter(params)
        return ok_paged(params, [c for c in ctx.state.clients() if keep(c)], client_object)

    async def one_client(request: Request) -> JSONResponse:
        client = ctx.state.client(request.path_params["clientid"])
        return ok([client_object(client)] if client is not None else [])

    async def by_username(request: Request) -> JSONResponse:
        name = request.path_params["username"]
        return ok([client_object(c) for c in ctx.state.clients() if c.info.username == name])

    async def kick(request: Request) -> JSONResponse:
        clean = _BOOLEAN.get(request.query_params.get("clean", "false"))
        if clean is None:
            raise bad_parameter("clean must be true or false")
        if not await ctx.control.kick(request.path_params["clientid"], clean=clean):
            raise ApiError(404, ResultCode.CLIENT_NOT_FOUND, message="no such client")
        return ok()

    def rows(client_id: str | None = None) -> list[dict[str, Any]]:
        return [
            {"clientid": entry.client_id, "topic": topic, "qos": qos}
            for entry in ctx.state.subscriptions()
            if client_id is None or entry.client_id == client_id
            for topic, qos in entry.subscriptions
        ]

    async def subscriptions(request: Request) -> JSONResponse:
        return ok_paged(request.query_params, rows())

    async def client_subscriptions(request: Request) -> JSONResponse:
        return ok(rows(request.path_params["clientid"]))

    async def tree(request: Request) -> JSONResponse:
        return ok(topic_tree(ctx.state, "clientid"))

    return [
        V4Route("/clients", "list_clients", "GET", "clients and offline sessions, filtered and paged", list_clients,
                params=_CLIENT_FILTERS, paged=True),
        V4Route("/clients/username/{username}", "lookup_client_via_username", "GET", "clients of one user",
                by_username),
        V4Route("/clients/{clientid:path}", "lookup_client", "GET", "one client", one_client),
        V4Route("/clients/{clientid:path}", "kick_client", "DELETE", "kick a client (?clean=true drops its session)",
                kick, params=("clean",), errors=((404, ResultCode.CLIENT_NOT_FOUND),)),
        V4Route("/subscriptions", "list_subscriptions", "GET", "every subscription, paged", subscriptions, paged=True),
        V4Route("/subscriptions/{clientid:path}", "lookup_client_subscriptions", "GET", "a client's subscriptions",
                client_subscriptions),
        V4Route("/topic-tree", "list_topic_tree", "GET", "the subscription topic tree", tree),
    ]  # fmt: skip

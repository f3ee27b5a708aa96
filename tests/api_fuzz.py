"""Property-based requests to the admin API, drawn from its own /api/v4/openapi.json, and the
rule every answer must keep. Used by tests/api/test_fuzz.py (bounded) and scripts/fuzz.py (long).

Requests: every documented operation with valid and invalid path parameters, query parameters
and bodies (from the documented JSON Schemas, arbitrary JSON with NaN, Infinity and lone
surrogates, raw bytes, cut-off JSON), wrong methods on known paths, unknown paths, and now and
then missing or wrong credentials.
"""

from __future__ import annotations

import base64
import json
import math
import re
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_from_bytes

import httpx
import jsonschema
import paho.mqtt.client as paho
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from broker.testing.threaded import ThreadedBroker

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
SERVED_V1_REQS = (2, 4, 5, 11, 12, 13)  # req 10 stops or restarts the broker under test
_TEMPLATE_PARAMETER = re.compile(r"\{(\w+)\}")
_AUTH = "Basic " + base64.b64encode(b"admin:public").decode()


@dataclass(frozen=True)
class FuzzRequest:
    """One request, and the documented operation it addresses (None: unknown path or method)."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    content: bytes | None
    authorization: str | None
    operation: tuple[str, str] | None  # (OpenAPI path, lower-case method)

    def send(self, client: httpx.Client) -> httpx.Response:
        headers = {"content-type": "application/json"} if self.content is not None else {}
        if self.authorization is not None:
            headers["authorization"] = self.authorization
        return client.request(self.method, self.path, params=list(self.query), content=self.content, headers=headers)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and the infinities included
    | st.text(st.characters(exclude_categories=())),  # lone surrogates included
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12,
)


odd_text = st.builds(
    lambda before, odd, after: before + odd + after,
    st.text(max_size=8),
    st.sampled_from(["\ud800", "\udfff", "\x00", "+", "#", "$SYS/", "$", "/", ",", "\n", "\U0001f600", "\uffff"]),
    st.text(max_size=8),
)
"""Text around a piece that topic, payload or client id rules care about."""


def _encode(value: Any, ascii_only: bool) -> bytes:
    try:
        return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: only an escape can carry it
        return json.dumps(value).encode("utf-8")


def from_schema(schema: dict[str, Any], valid: bool = True) -> st.SearchStrategy[Any]:
    """Values for the subset of JSON Schema the document uses (objects with required and
    optional properties and ``anyOf`` required sets, arrays of up to 4 items, enums, strings,
    integers, booleans): ``valid`` ones, or ones where any value may be of any kind."""
    kind = schema.get("type")
    if kind == "object" and "properties" in schema:
        properties = {name: from_schema(sub, valid) for name, sub in schema["properties"].items()}
        required = set(schema.get("required", []))
        if valid and "anyOf" in schema:
            required |= set(schema["anyOf"][0].get("required", []))
        optional = {name: strategy for name, strategy in properties.items() if name not in required}
        return st.fixed_dictionaries({name: properties[name] for name in sorted(required)}, optional=optional)
    if kind == "array":
        return st.lists(from_schema(schema.get("items", {}), valid), max_size=4)
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) if valid else st.one_of(st.sampled_from(schema["enum"]), json_values)
    by_type: dict[str, st.SearchStrategy[Any]] = {
        "string": st.one_of(st.text(max_size=24), odd_text),
        "integer": st.integers(),
        "boolean": st.booleans(),
        "object": st.dictionaries(st.text(max_size=8), json_values, max_size=3),
    }
    base = by_type.get(kind or "", json_values)
    return base if valid else st.one_of(base, json_values)


@st.composite
def _json_body(draw: st.DrawFn, schema: dict[str, Any] | None) -> bytes:
    """A body for ``schema``: often valid, else with values of any kind, any JSON, NaN or
    Infinity put in, raw bytes or cut-off JSON."""
    kind = draw(st.sampled_from(["valid", "valid", "valid", "mixed", "any", "NaN", "raw", "cut"]))
    if kind == "raw":
        return draw(st.binary(max_size=64))
    if schema is None or kind == "any":
        value = draw(st.one_of(json_values, st.sampled_from([[], {}, "", 0, None])))
    else:
        value = draw(from_schema(schema, valid=kind != "mixed"))
    if kind == "NaN" and isinstance(value, dict) and value:
        value = {**value, draw(st.sampled_from(sorted(value))): draw(st.sampled_from([math.nan, math.inf]))}
    encoded = _encode(value, draw(st.booleans()))
    if kind == "cut" and len(encoded) > 1:
        return encoded[: draw(st.integers(1, len(encoded) - 1))]
    return encoded


def _path_segment() -> st.SearchStrategy[str]:
    """A non-empty path parameter, percent-encoded; never '/', '.' or '..' once decoded."""
    text = st.text(st.characters(codec="utf-8", exclude_characters="/"), min_size=1, max_size=20)
    raw = st.binary(min_size=1, max_size=12).filter(lambda b: b"/" not in b)
    return st.one_of(text.map(lambda t: quote(t, safe="")), raw.map(lambda b: quote_from_bytes(b, safe=""))).map(
        lambda segment: segment.replace(".", "%2E")
    )


def _value() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["", "0", "1", "2", "-1", "true", "false", "connected", "MQTT", "4", "10000", "10001"]),
        st.integers(-(10**12), 10**12).map(str),
        st.text(st.characters(codec="utf-8"), max_size=12),
        st.text("0123456789", min_size=4000, max_size=4400),
    )


@st.composite
def _query(draw: st.DrawFn, operation: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
    chosen = draw(st.lists(st.sampled_from(names), max_size=3)) if names else []
    if draw(st.integers(0, 9)) == 0:
        chosen.append(draw(st.sampled_from(["x", "_page", "clientid", "topic", "colour"])))
    return tuple((name, draw(_value())) for name in chosen)


def _bad_authorization() -> st.SearchStrategy[str | None]:
    """Missing, wrong or malformed credentials."""
    wrong = "Basic " + base64.b64encode(b"admin:wrong").decode()
    return st.sampled_from([None, wrong, "Basic", "Bearer x", "Basic !!!"])


def v1_bodies() -> st.SearchStrategy[bytes]:
    """v1 envelopes: served requests with optional fields, other codes, and anything else."""
    served = st.fixed_dictionaries(
        {"req": st.sampled_from(SERVED_V1_REQS), "seq": st.integers(0, 2**40)},
        optional={"data": json_values, "action": st.text(max_size=8), "extra": json_values},
    )
    other = st.fixed_dictionaries({"req": json_values, "seq": json_values}).filter(
        lambda body: not (isinstance(body["req"], int) and body["req"] == 10)
    )
    return st.one_of(served.map(lambda b: _encode(b, True)), other.map(lambda b: _encode(b, True)), _json_body(None))


def documented_requests(document: dict[str, Any], excluded: frozenset[str]) -> st.SearchStrategy[FuzzRequest]:
    """Requests to the documented operations, except those whose operationId is ``excluded``."""
    strategies = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if operation["operationId"] in excluded:
                continue
            strategies.append(_operation_request(path, method, operation))
    return st.one_of(strategies)


@st.composite
def _operation_request(draw: st.DrawFn, path: str, method: str, operation: dict[str, Any]) -> FuzzRequest:
    concrete = _TEMPLATE_PARAMETER.sub(lambda _: draw(_path_segment()), path)
    if path == "/api/v1":
        content: bytes | None = draw(v1_bodies())
    elif "requestBody" in operation:
        content = draw(_json_body(operation["requestBody"]["content"]["application/json"]["schema"]))
    else:
        content = None
    authorization = draw(_bad_authorization()) if draw(st.integers(0, 9)) == 7 else _AUTH  # about 1 in 10
    return FuzzRequest(method.upper(), concrete, draw(_query(operation)), content, authorization, (path, method))


@st.composite
def stray_requests(draw: st.DrawFn, document: dict[str, Any]) -> FuzzRequest:
    """A wrong method on a documented path, or an unknown path."""
    paths = sorted(p for p in document["paths"] if "{" not in p)
    if draw(st.booleans()):
        path = draw(st.sampled_from(paths))
        served = {m.upper() for m in document["paths"][path]}
        method = draw(st.sampled_from([m for m in METHODS if m not in served]))
        return FuzzRequest(method, path, (), None, _AUTH, None)
    prefix = draw(st.sampled_from(["/api/v4/no-such-", "/api/no-such-", "/no-such-", "/api/v1/no-such-"]))
    return FuzzRequest(draw(st.sampled_from(METHODS)), prefix + draw(_path_segment()), (), None, _AUTH, None)


@dataclass
class Verdict:
    """What was wrong with one answer (empty: nothing)."""

    server_error: bool = False
    not_json: bool = False
    undocumented: str = ""


def judge(document: dict[str, Any], request: FuzzRequest, response: httpx.Response) -> Verdict:
    """Every answer is JSON with a code the document lists for its operation and status (an
    unknown path 404/102, a wrong method 405/102), or of the documented other media type
    (Prometheus' text); never a 5xx."""
    verdict = Verdict(server_error=response.status_code >= 500)
    documented = None
    if request.operation is not None:
        path, method = request.operation
        documented = document["paths"][path][method]["responses"].get(str(response.status_code))
    if documented is not None and "application/json" not in documented["content"]:
        [media_type] = documented["content"]
        verdict.undocumented = "" if response.headers.get("content-type", "").startswith(media_type) else media_type
        return verdict
    try:
        body = response.json()
    except ValueError:
        verdict.not_json = True
        return verdict
    if response.headers.get("content-type") != "application/json" or not isinstance(body, dict):
        verdict.not_json = True
        return verdict
    if request.operation is None:
        expected_status = 405 if request.path in document["paths"] else 404
        if (response.status_code, body.get("code")) != (expected_status, 102):
            verdict.undocumented = f"{response.status_code} {body}"
        return verdict
    if documented is None:
        verdict.undocumented = f"status {response.status_code} {body}"
        return verdict
    try:
        jsonschema.validate(body, documented["content"]["application/json"]["schema"])
    except jsonschema.ValidationError as error:
        verdict.undocumented = f"{response.status_code} {body}: {error.message}"
    return verdict


def mqtt_round_trip(broker: ThreadedBroker, timeout: float = 5.0) -> list[bytes]:
    """The payloads a paho subscriber receives after another paho client publishes one QoS 1 message."""
    subscribed, delivered = threading.Event(), threading.Event()
    payloads: list[bytes] = []

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        payloads.append(bytes(message.payload))
        delivered.set()

    subscriber = paho.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-sub")
    subscriber.on_subscribe = lambda *_: subscribed.set()
    subscriber.on_message = on_message
    publisher = paho.Client(CallbackAPIVersion.VERSION2, client_id="fuzz-pub")
    for client in (subscriber, publisher):
        client.connect(broker.mqtt_host, broker.mqtt_port)
        client.loop_start()
    try:
        subscriber.subscribe("after/fuzz", qos=1)
        assert subscribed.wait(timeout)
        publisher.publish("after/fuzz", b"still routing", qos=1).wait_for_publish(timeout)
        assert delivered.wait(timeout)
        return payloads
    finally:
        for client in (subscriber, publisher):
            client.disconnect()
            client.loop_stop()

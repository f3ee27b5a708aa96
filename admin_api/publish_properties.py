"""The ``properties`` object of a v4 publish (NanoMQ's MQTT 5 PUBLISH properties), checked and
made into the broker's ``Properties``.

NanoMQ's documented keys: ``payload_format_indicator`` (0 or 1), ``message_expiry_interval``
(seconds, a Four Byte Integer), ``response_topic`` (a topic name), ``correlation_data`` (a
string, sent as its UTF-8 bytes), ``content_type`` and ``user_properties`` (an object; a number
or a boolean value is sent as text the way NanoMQ writes it: ``10010``, ``1.500000``, ``true``).
Its ``subscription_identifier`` and a ``topic_alias`` are refused by name: the broker assigns
subscription identifiers per subscription (a PUBLISH from a client carrying one is a Protocol
Error, MQTT 5.0 3.3.4-6) and a topic alias belongs to one MQTT connection, which an HTTP
publish does not have. Every wrong value is a ``ValueError`` naming the key.
"""

from __future__ import annotations

import math
from typing import Any

from broker.mqtt.properties import Properties
from broker.mqtt.topics import is_valid_topic_name

__all__ = ["PROPERTIES_SCHEMA", "parse_properties"]

_MAX_FOUR_BYTES = 2**32 - 1
_MAX_STRING = 65_535  # bytes of an MQTT string or binary data (1.5.4, 1.5.6)
_NOT_OVER_HTTP = {
    "subscription_identifier": "the broker sets subscription identifiers per subscription; a publisher sends none",
    "topic_alias": "a topic alias belongs to one MQTT connection; an HTTP publish names its topic",
}
_TEXT = {"type": "string", "maxLength": _MAX_STRING}
PROPERTIES_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "MQTT 5 PUBLISH properties, delivered to MQTT 5 subscribers (dropped towards 3.1.1)",
    "properties": {
        "payload_format_indicator": {"type": "integer", "enum": [0, 1], "description": "1: the payload is UTF-8"},
        "message_expiry_interval": {"type": "integer", "minimum": 0, "maximum": _MAX_FOUR_BYTES,
                                    "description": "seconds (0: none); a copy not delivered by then is dropped"},
        "response_topic": {**_TEXT, "description": "a topic name (no wildcards)"},
        "correlation_data": {**_TEXT, "description": "sent as the string's UTF-8 bytes"},
        "content_type": _TEXT,
        "user_properties": {"type": "object", "additionalProperties": {"type": ["string", "number", "boolean"]},
                            "description": "name: value pairs; numbers and booleans are sent as text"},
    },
    "additionalProperties": False,
}  # fmt: skip


def _mqtt_string(value: object, what: str) -> str:
    """``value`` if it is text MQTT can carry as a UTF-8 string (2.2.2.2, 1.5.4), else ValueError."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not Unicode text (a lone surrogate)") from None
    if "\x00" in value:
        raise ValueError(f"{what} holds U+0000, which MQTT strings may not")
    if size > _MAX_STRING:
        raise ValueError(f"{what} is longer than {_MAX_STRING} bytes of UTF-8")
    return value


def _whole_number(value: object, what: str, highest: int) -> int:
    if type(value) is not int or not 0 <= value <= highest:
        raise ValueError(f"{what} must be a whole number from 0 to {highest}")
    return value


def _binary(value: object, what: str) -> bytes:
    """A string's UTF-8 bytes, as NanoMQ sends binary data given as a string (U+0000 allowed)."""
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string")
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not Unicode text (a lone surrogate)") from None
    if len(data) > _MAX_STRING:
        raise ValueError(f"{what} is longer than {_MAX_STRING} bytes")
    return data


def _as_text(value: object, what: str) -> object:
    """A user property's value: a number or a boolean as the text NanoMQ writes for it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return str(int(value)) if value.is_integer() else f"{value:f}"
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, a number or a boolean")
    return value


def _user_properties(value: object) -> list[tuple[str, str]]:
    if not isinstance(value, dict):
        raise ValueError("user_properties must be a JSON object of name: value pairs")
    pairs = []
    for name, item in value.items():
        what = f"user_properties[{name!r}]"
        pairs.append((_mqtt_string(name, f"the user property name {name!r}"), _mqtt_string(_as_text(item, what), what)))
    return pairs


def parse_properties(value: object, payload: bytes) -> Properties | None:
    """The MQTT 5 properties an HTTP publish of ``payload`` asks for (None: none); ValueError
    saying what is wrong otherwise."""
    if not isinstance(value, dict):
        raise ValueError("properties must be a JSON object")
    for name in value:
        if name in _NOT_OVER_HTTP:
            raise ValueError(f"properties.{name} is not accepted: {_NOT_OVER_HTTP[name]}")
        if name not in PROPERTIES_SCHEMA["properties"]:
            raise ValueError(f"unknown property {name!r}")
    properties = Properties()
    values = properties.values
    if "payload_format_indicator" in value:
        indicator = value["payload_format_indicator"]
        if type(indicator) is not int or indicator not in (0, 1):
            raise ValueError("payload_format_indicator must be 0 or 1")
        if indicator == 1 and not _is_utf8(payload):
            raise ValueError("payload_format_indicator is 1 but the payload is not UTF-8")
        values["payload_format_indicator"] = indicator
    if "message_expiry_interval" in value:
        interval = value["message_expiry_interval"]
        values["message_expiry_interval"] = _whole_number(interval, "message_expiry_interval", _MAX_FOUR_BYTES)
    if "content_type" in value:
        values["content_type"] = _mqtt_string(value["content_type"], "content_type")
    if "response_topic" in value:
        topic = _mqtt_string(value["response_topic"], "response_topic")
        if not is_valid_topic_name(topic):  # a Protocol Error in a PUBLISH (3.3.2.3.5)
            raise ValueError("response_topic must be a topic name: not empty, no wildcard (+ or #)")
        values["response_topic"] = topic
    if "correlation_data" in value:
        values["correlation_data"] = _binary(value["correlation_data"], "correlation_data")
    if "user_properties" in value:
        properties.user_properties.extend(_user_properties(value["user_properties"]))
    return properties if properties else None


def _is_utf8(payload: bytes) -> bool:
    try:
        payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True

"""``MessageProperties``: what an MQTT 5 PUBLISH carries to its subscribers (pure, no I/O).

A message routed to MQTT 5 subscribers keeps the properties the standard says are forwarded
unchanged (payload format indicator, content type, response topic, correlation data, user
properties: 3.3.2.3) as their encoded bytes, so each copy appends them without encoding them
again, and its message expiry as a deadline on the wall clock, so the interval sent on is reduced
by the time the message waited (3.3.2.3.3) and a queued copy past it is dropped. MQTT 3.1.1
subscribers get none of it (properties are dropped towards v3).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from broker.mqtt.properties import Properties, decode_varint, encode_properties, encode_varint

__all__ = ["FORWARDED", "MessageProperties", "property_block"]

FORWARDED = ("payload_format_indicator", "content_type", "response_topic", "correlation_data")
"""The single properties of a PUBLISH a broker forwards unchanged (with the user properties)."""
_EXPIRY = b"\x02"  # Message Expiry Interval's identifier
_SUBSCRIPTION_ID = b"\x0b"


@dataclass(frozen=True, slots=True)
class MessageProperties:
    """The forwarded properties of one message (encoded pairs, no length) and when it expires."""

    forwarded: bytes = b""
    expires_at: float | None = None
    """Wall-clock time (``time.time()``) after which the message is not delivered; None: never."""

    @classmethod
    def from_properties(cls, properties: Properties, now: float) -> MessageProperties | None:
        """The part of a PUBLISH's (or a will's) properties that travels with the message; None
        when there is nothing to carry (the usual case, which then costs nothing)."""
        kept = Properties(
            {name: properties.values[name] for name in FORWARDED if name in properties.values},
            list(properties.user_properties),
        )
        interval = properties.get("message_expiry_interval") or None  # 0: no expiry, as mosquitto reads it
        if not kept and interval is None:
            return None
        forwarded = b""
        if kept:
            block = encode_properties(kept)
            forwarded = block[decode_varint(block, 0)[1] :]  # the pairs, without the block's length
        expires_at = now + int(interval) if isinstance(interval, int) else None
        return cls(forwarded, expires_at)

    def expired(self, now: float) -> bool:
        """Whether the message's expiry interval has passed (it is then dropped, not delivered)."""
        return self.expires_at is not None and now >= self.expires_at

    def remaining(self, now: float) -> int | None:
        """The expiry interval to send on: what is left of it, in whole seconds (at least 1)."""
        if self.expires_at is None:
            return None
        return max(1, math.ceil(self.expires_at - now))

    def block(self, now: float, subscription_ids: Sequence[int] = ()) -> bytes:
        """The property block (length first) of an outgoing PUBLISH carrying this message."""
        return property_block(self, now, subscription_ids)


def property_block(properties: MessageProperties | None, now: float, subscription_ids: Sequence[int] = ()) -> bytes:
    """The property block of an outgoing MQTT 5 PUBLISH: the message's properties (None: none)
    and the subscription identifiers of the subscriptions it matched (3.3.4-3)."""
    if properties is None and not subscription_ids:
        return b"\x00"  # the usual case: no properties
    body = b""
    if properties is not None:
        remaining = properties.remaining(now)
        if remaining is not None:
            body = _EXPIRY + remaining.to_bytes(4, "big")
        body += properties.forwarded
    for identifier in subscription_ids:
        body += _SUBSCRIPTION_ID + encode_varint(identifier)
    return encode_varint(len(body)) + body

"""``UpstreamLinkV5``: a bridge's link to its upstream in MQTT 5 (``proto_ver = 5``).

What differs from MQTT 3.1.1 (``UpstreamLink``, whose reading, writing and keep-alive it keeps):
- CONNECT: Clean Start 0 asks for a session that never expires (as MQTT 3.1.1's clean session 0
  does), Clean Start 1 for one that ends with the link; no topic aliases are allowed to the upstream
  (Topic Alias Maximum absent: 0) and the bridge uses none either.
- CONNACK: a reason code of 0x80 or more refuses the link; its properties are the ``limits`` the
  bridge honours (Receive Maximum, Maximum Packet Size, Maximum QoS, Retain Available) and its
  Server Keep Alive replaces the bridge's own (3.2.2-21).
- PUBLISH carries the message's properties (``MessageProperties``) both ways; one larger than the
  upstream's Maximum Packet Size is not written (the bridge drops and counts it).
- Acknowledgements carry reason codes: 0x80 or more is the upstream refusing the message; a PUBREC
  refusing it ends its exchange (no PUBREL, 4.3.3).
- SUBSCRIBE with No Local: what the bridge forwards upstream is not sent back to it.
- A DISCONNECT (or an AUTH, which the bridge does not offer) from the upstream ends the link with
  its reason code and reason string.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import TypeVar

from broker.bridges.link import LinkError, LinkOptions, UpstreamLink
from broker.bridges.upstream_v5 import (
    UpstreamLimits,
    ack_reason,
    read_connack,
    read_disconnect,
    read_publish,
    read_suback,
    reason_name,
)
from broker.mqtt.encoding import (
    encode_ack_v5,
    encode_connect,
    encode_publish_v5,
    encode_subscribe_v5,
    encode_unsubscribe_v5,
    subscription_options,
)
from broker.mqtt.message_properties import MessageProperties
from broker.mqtt.properties import Properties

__all__ = ["UpstreamLinkV5"]

_PUBLISH, _PUBACK, _PUBREC, _PUBREL, _PUBCOMP, _SUBACK, _UNSUBACK, _DISCONNECT, _AUTH = 3, 4, 5, 6, 7, 9, 11, 14, 15
_NEVER_EXPIRES = 0xFFFFFFFF  # the Session Expiry Interval of a session kept across links (3.1.2.11.2)
_NO_PROPERTIES = b"\x00"
_T = TypeVar("_T")


def _read(read: Callable[[bytes], _T], packet: bytes) -> _T:
    """``read(packet)``; LinkError (the link ends) if the packet is malformed."""
    try:
        return read(packet)
    except (ValueError, struct.error, IndexError) as exc:
        raise LinkError(f"malformed packet from the upstream: {exc or type(exc).__name__}") from None


class UpstreamLinkV5(UpstreamLink):
    """See the module docstring."""

    def _connect_packet(self, options: LinkOptions) -> bytes:
        properties = Properties()
        if not options.clean_session:
            properties.values["session_expiry_interval"] = _NEVER_EXPIRES
        return encode_connect(
            options.client_id,
            clean_session=options.clean_session,
            keep_alive=options.keepalive,
            username=options.username,
            password=options.password,
            level=5,
            properties=properties,
        )

    def _connack(self, packet: bytes) -> bool:
        session_present, code, properties = _read(read_connack, packet)
        if code >= 0x80:
            text = properties.get("reason_string")
            raise LinkError(f"CONNACK {reason_name(code, text if isinstance(text, str) else None)}")
        self.limits = UpstreamLimits.from_properties(properties)
        if self.limits.server_keep_alive is not None:
            self._keepalive = self.limits.server_keep_alive
        return session_present

    def _publish_packet(
        self, topic: str, payload: bytes, qos: int, retain: bool, packet_id: int, properties: MessageProperties | None
    ) -> bytes | None:
        block = properties.block(time.time()) if properties is not None else _NO_PROPERTIES
        packet = encode_publish_v5(topic, payload, block, qos=qos, packet_id=packet_id, retain=retain)
        largest = self.limits.maximum_packet_size
        return packet if largest is None or len(packet) <= largest else None

    def pubrel(self, packet_id: int) -> None:
        self._write(encode_ack_v5(_PUBREL, packet_id))

    async def subscribe(self, packet_id: int, filters: list[tuple[str, int]], timeout: float) -> list[int]:
        """SUBSCRIBE with No Local and wait for the SUBACK's reason codes (0x80 and above: refused)."""
        options = [(topic, subscription_options(qos, no_local=True)) for topic, qos in filters]
        reply = await self._request(packet_id, encode_subscribe_v5(packet_id, *options), "SUBACK", timeout)
        return _read(read_suback, reply)[1]

    async def unsubscribe(self, packet_id: int, filters: list[str], timeout: float) -> None:
        await self._request(packet_id, encode_unsubscribe_v5(packet_id, *filters), "UNSUBACK", timeout)

    async def _handle(self, packet: bytes) -> bool:
        kind = packet[0] >> 4
        if kind in (_PUBACK, _PUBREC, _PUBCOMP):
            packet_id, reason = _read(ack_reason, packet)
            refused = reason >= 0x80
            self._on_acknowledged(packet_id, kind != _PUBREC or refused, reason)
            if kind == _PUBREC and not refused:
                self.pubrel(packet_id)
        elif kind == _PUBLISH:
            topic, payload, qos, retain, packet_id, properties = _read(read_publish, packet)
            carried = MessageProperties.from_properties(properties, time.time())
            await self._take(topic, payload, qos, retain, packet_id, carried)
        elif kind == _PUBREL:
            packet_id, _ = _read(ack_reason, packet)
            self._incoming_qos2.discard(packet_id)
            self._write(encode_ack_v5(_PUBCOMP, packet_id))
        elif kind in (_SUBACK, _UNSUBACK):
            packet_id, _ = _read(ack_reason, packet)
            waiter = self._replies.get(packet_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(packet)
        elif kind in (_DISCONNECT, _AUTH):
            code, text = _read(read_disconnect, packet) if kind == _DISCONNECT else (0x8C, "AUTH is not offered")
            self.reason = f"disconnected by the upstream: {reason_name(code, text)}"
            return False
        return True

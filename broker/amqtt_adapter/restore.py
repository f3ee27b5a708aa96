"""Sessions and retained messages read back from the store at start-up, as amqtt's objects.

A restored session is offline until its client connects again (session present = 1). Copies
that had a packet id are in flight: resent with DUP=1 on resume (a QoS 2 one whose PUBREC came
resends its PUBREL); the others are its offline queue. Received QoS 2 ids wait for their PUBREL.
"""

from __future__ import annotations

from amqtt.mqtt.pubrel import PubrelPacket
from amqtt.session import IncomingApplicationMessage

from broker.amqtt_adapter.handler import OutgoingCopy
from broker.amqtt_adapter.session import EdgeSession, QueuedMessage
from broker.persistence.journal import StoredSession

__all__ = ["restored_session"]


def restored_session(stored: StoredSession) -> tuple[EdgeSession, int]:
    """The offline session ``stored`` describes, and the payload bytes of its offline queue."""
    session = EdgeSession()
    session.__dict__.update(
        client_id=stored.client_id,
        clean_session=False,
        username=stored.username,
        protocol_level=stored.protocol,
    )
    session.transitions.state = "disconnected"
    queued_bytes = 0
    for message in stored.messages:
        if message.packet_id is None:
            session.retained_messages.put_nowait(
                QueuedMessage(None, message.topic, message.payload, message.qos, message.seq)
            )
            queued_bytes += len(message.payload)
            continue
        copy = OutgoingCopy(message.packet_id, message.topic, message.qos, message.payload, False, message.seq)
        copy.publish_packet = copy.build_publish_packet(dup=True)  # sent before: resent as a duplicate
        if message.released:
            copy.pubrel_packet = PubrelPacket.build(message.packet_id)
        session.inflight_out[message.packet_id] = copy
    for packet_id in stored.incoming_qos2:
        session.inflight_in[packet_id] = IncomingApplicationMessage(packet_id, "", 2, b"", False)
    return session, queued_bytes

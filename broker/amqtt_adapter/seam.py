"""The amqtt seam: every amqtt name the adapter (broker/amqtt_adapter/) imports, overrides, calls or reads.

edgemq replaces large parts of amqtt 0.12.1 and reaches into its private names, which amqtt may
change in any release. tests/unit/test_amqtt_seam.py checks this list against the installed amqtt
(every name exists, every signature is the same; it reports all differences at once) and against the
adapter's code (an AST scan: every amqtt name it uses is listed, every listed name is used; it prints
the lines to add or remove). After an amqtt upgrade or an adapter change, run it and paste its lines.

One entry per line: four spaces, the kind in ten columns, the dotted name, and for a function or
method amqtt's signature (annotations as text, module paths left out); a long signature continues on
lines indented 18 spaces. Names are given on the class the adapter uses (its base class, or the class
a parameter is annotated with), which may inherit them. Every other line is a note.

- import: a module-level name imported from amqtt (a function with its signature).
- override: a method (amqtt's signature) or class attribute an adapter class defines over its amqtt base.
- call: an amqtt method or constructor called through super(), self or an object of a known class.
- read: an amqtt attribute read or set (on self, an object of a known class, or named in a string).

The scan cannot follow values of unknown class (``packet_class(header)``, messages taken from a queue,
``session.transitions``): names used only through those are not listed.

-- import: names imported from amqtt --

I/O interfaces the adapter implements over edgemq's own sockets, and BufferReader to decode a packet already read.
    import    amqtt.adapters.BufferReader
    import    amqtt.adapters.ReaderAdapter
    import    amqtt.adapters.WebSocketsWriter
    import    amqtt.adapters.WriterAdapter

The broker, its context (plugin typing), the retained and offline-queue message; ACL actions.
    import    amqtt.broker.Broker
    import    amqtt.broker.BrokerContext
    import    amqtt.broker.RetainedApplicationMessage
    import    amqtt.contexts.Action

Errors that end one connection (caught per connection).
    import    amqtt.errors.AMQTTError
    import    amqtt.errors.MQTTError
    import    amqtt.errors.NoDataError

A plugin that cannot be loaded (its class, its options, its constructor): refused at start as
PluginError naming it (plugin_loading.py, which finds and checks plugins as amqtt's manager does).
    import    amqtt.errors.PluginError
    import    amqtt.errors.PluginLoadError
    import    amqtt.utils.import_string(dotted_path: str) -> Any

Events the adapter fires itself where it replaces amqtt's code, so amqtt plugins still see them.
    import    amqtt.events.BrokerEvents
    import    amqtt.events.MQTTEvents

Packet classes, CONNACK codes, QoS constants: edgemq parses and writes MQTT itself (broker/mqtt/framing.py)
and builds amqtt's packet objects only where amqtt or a plugin wants them (packet events, websockets, rare packets).
    import    amqtt.mqtt.connack
    import    amqtt.mqtt.connack.BAD_USERNAME_PASSWORD
    import    amqtt.mqtt.connack.CONNECTION_ACCEPTED
    import    amqtt.mqtt.connack.ConnackPacket
    import    amqtt.mqtt.connack.IDENTIFIER_REJECTED
    import    amqtt.mqtt.connack.NOT_AUTHORIZED
    import    amqtt.mqtt.connack.SERVER_UNAVAILABLE
    import    amqtt.mqtt.connack.UNACCEPTABLE_PROTOCOL_VERSION
    import    amqtt.mqtt.connect.ConnectPacket
    import    amqtt.mqtt.constants.QOS_1
    import    amqtt.mqtt.constants.QOS_2
    import    amqtt.mqtt.disconnect.DisconnectPacket
    import    amqtt.mqtt.packet.MQTTFixedHeader
    import    amqtt.mqtt.packet_class(fixed_header: MQTTFixedHeader) -> type[MQTTPacket[Any, Any, Any]]
    import    amqtt.mqtt.pingreq.PingReqPacket
    import    amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler
    import    amqtt.mqtt.puback.PubackPacket
    import    amqtt.mqtt.pubcomp.PubcompPacket
    import    amqtt.mqtt.pubrec.PubrecPacket
    import    amqtt.mqtt.pubrel.PubrelPacket
    import    amqtt.mqtt.suback.SubackPacket
    import    amqtt.mqtt.unsuback.UnsubackPacket

Plugin base classes (users' plugins are told apart by them: access.py asks auth and topic plugins)
and the manager that loads plugins and fires events.
    import    amqtt.plugins.base.BaseAuthPlugin
    import    amqtt.plugins.base.BasePlugin
    import    amqtt.plugins.base.BaseTopicPlugin
    import    amqtt.plugins.manager.PluginManager

The session (EdgeSession derives from it), application messages and the OUTGOING direction flag.
    import    amqtt.session.IncomingApplicationMessage
    import    amqtt.session.OUTGOING
    import    amqtt.session.OutgoingApplicationMessage
    import    amqtt.session.Session
    import    amqtt.utils.gen_client_id() -> str

-- override: amqtt methods and class attributes an adapter class defines again --

FramedReader, ConnectionWriter, WebSocketWriter: amqtt's reader and writer interface over edgemq's
listeners (edgemq binds and reads the sockets; amqtt's handler writes through these).
    override  amqtt.adapters.ReaderAdapter.feed_eof(self) -> None
    override  amqtt.adapters.ReaderAdapter.read(self, n: int = -1) -> bytes
    override  amqtt.adapters.WebSocketsWriter.drain(self) -> None
    override  amqtt.adapters.WriterAdapter.close(self) -> None
    override  amqtt.adapters.WriterAdapter.drain(self) -> None
    override  amqtt.adapters.WriterAdapter.get_peer_info(self) -> tuple[str, int] | None
    override  amqtt.adapters.WriterAdapter.get_ssl_info(self) -> SSLObject | None
    override  amqtt.adapters.WriterAdapter.write(self, data: bytes) -> None

EdgeAmqttBroker (edge_broker.py): connection lifecycle (authenticate before touching a session, take-over,
keep-alive, wills), its own connection entry, session removal counted into the state, an empty index and
retained store at every start; amqtt's broadcast loop and session monitor replaced by no-ops (edgemq
routes at once and ends clean sessions with their connection; no session expires).
    override  amqtt.broker.Broker.__init__(self, config: BrokerConfig | dict[str, Any] | None = None,
                  loop: AbstractEventLoop | None = None, plugin_namespace: str | None = None) -> None
    override  amqtt.broker.Broker._broadcast_loop(self) -> None
    override  amqtt.broker.Broker._cleanup_session(self, client_id: str) -> None
    override  amqtt.broker.Broker._client_connected(self, listener_name: str, reader: ReaderAdapter,
                  writer: WriterAdapter) -> None
    override  amqtt.broker.Broker._del_all_subscriptions(self, session: Session) -> None
    override  amqtt.broker.Broker._del_subscription(self, a_filter: str, session: Session) -> int
    override  amqtt.broker.Broker._delete_session(self, client_id: str) -> None
    override  amqtt.broker.Broker._session_monitor(self) -> None
    override  amqtt.broker.Broker.shutdown(self) -> None
    override  amqtt.broker.Broker.start(self) -> None

Router (router.py, a base class of EdgeAmqttBroker): amqtt's entries for plugins' messages, retained
messages and subscriptions made outside a SUBSCRIBE, served by edgemq's index and retained store; the
subscriptions and retained_messages properties are views of those, made on request for amqtt's $SYS
plugin and plugin contexts.
    override  amqtt.broker.Broker._broadcast_message(self, session: Session | None, topic: str | None,
                  data: bytes | bytearray | None, force_qos: int | None = None) -> None
    override  amqtt.broker.Broker.add_subscription(self, subscription: tuple[str, int], session: Session) -> int
    override  amqtt.broker.Broker.retain_message(self, source_session: Session | None, topic_name: str | None,
                  data: bytes | bytearray | None, qos: int | None = None) -> None
    override  amqtt.broker.Broker.retained_messages
    override  amqtt.broker.Broker.subscriptions

EdgeHandler: the CONNECT and CONNACK, the packets its Connection hands it (as amqtt's objects), outgoing
QoS 1/2 kept until acknowledged.
Its __init__ replaces amqtt's without calling it: the class attributes below stand in for the
instance attributes amqtt's __init__ would set.
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.__init__(self,
                  plugins_manager: PluginManager[BrokerContext], session: Session | None = None,
                  loop: AbstractEventLoop | None = None) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._disconnect_waiter
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._handle_qos1_message_flow(self,
                  app_message: OutgoingApplicationMessage | IncomingApplicationMessage) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._handle_qos2_message_flow(self,
                  app_message: OutgoingApplicationMessage | IncomingApplicationMessage) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._init_session(self, session: Session) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.mqtt_publish(self, topic: str,
                  data: bytes | bytearray, qos: int | None, retain: bool,
                  ack_timeout: int | None = None) -> OutgoingApplicationMessage
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._keepalive_task
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._reader_ready
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._reader_task
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._send_packet(self, packet: PublishPacket |
                  PubackPacket | ConnackPacket | SubackPacket | ConnectPacket | SubscribePacket | UnsubscribePacket |
                  DisconnectPacket | PingReqPacket | PubrelPacket | PubrecPacket | PubcompPacket | PingRespPacket |
                  UnsubackPacket) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_connect(self,
                  connect: ConnectPacket) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_disconnect(self,
                  disconnect: DisconnectPacket | None) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_puback(self, puback: PubackPacket) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_pubcomp(self,
                  pubcomp: PubcompPacket) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.keepalive_timeout
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.logger
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.reader
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.session
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.start(self) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.stop(self) -> None
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.writer

EdgeSession: amqtt's __init__ replaced (same attributes, a light connection state, queues made on
first use), so amqtt's state dump and queue clearing are adapted to the lazy queues.
    override  amqtt.session.Session.__getstate__(self) -> dict[str, Any]
    override  amqtt.session.Session.__init__(self) -> None
    override  amqtt.session.Session.clear_queues(self) -> None

MQTT 5 connections: outgoing QoS 0 copies are written as MQTT 5 bytes (amqtt's packet classes are 3.1.1's).
    override  amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._handle_qos0_message_flow(self,
                  app_message: IncomingApplicationMessage | OutgoingApplicationMessage) -> None

-- call: amqtt methods and constructors the adapter calls --

The writer interface (super() in WebSocketWriter; session_from_connect reads peer and TLS info).
    call      amqtt.adapters.BufferReader.__init__(self, buffer: bytes) -> None
    call      amqtt.adapters.WebSocketsWriter.__init__(self, protocol: Connection) -> None
    call      amqtt.adapters.WebSocketsWriter.drain(self) -> None
    call      amqtt.adapters.WriterAdapter.close(self) -> None
    call      amqtt.adapters.WriterAdapter.get_peer_info(self) -> tuple[str, int] | None
    call      amqtt.adapters.WriterAdapter.get_ssl_info(self) -> SSLObject | None

amqtt's broker code edgemq reuses: super() in the overrides above, handler teardown and the
start/shutdown by MqttCore.
    call      amqtt.broker.Broker.__init__(self, config: BrokerConfig | dict[str, Any] | None = None,
                  loop: AbstractEventLoop | None = None, plugin_namespace: str | None = None) -> None
    call      amqtt.broker.Broker._cleanup_session(self, client_id: str) -> None
    call      amqtt.broker.Broker._delete_session(self, client_id: str) -> None
    call      amqtt.broker.Broker._stop_handler(self, handler: BrokerProtocolHandler) -> None
    call      amqtt.broker.Broker.shutdown(self) -> None
    call      amqtt.broker.Broker.start(self) -> None

Messages queued for an offline persistent session.
    call      amqtt.broker.RetainedApplicationMessage.__init__(self, source_session: Session | None, topic: str,
                  data: bytes | bytearray, qos: int | None = None) -> None

Packet objects built or decoded where amqtt's are needed (plugins listening, websockets, rare packets).
    call      amqtt.mqtt.connack.ConnackPacket.build(cls, session_parent: int | None = None,
                  return_code: int | None = None) -> Self
    call      amqtt.mqtt.connect.ConnectPacket.from_stream(cls: type[Self], reader: ReaderAdapter,
                  fixed_header: Optional[_FH] = None, variable_header: Optional[_VH] = None) -> Self
    call      amqtt.mqtt.disconnect.DisconnectPacket.__init__(self, fixed: MQTTFixedHeader | None = None) -> None
    call      amqtt.mqtt.pingreq.PingReqPacket.__init__(self, fixed: MQTTFixedHeader | None = None) -> None
    call      amqtt.mqtt.packet.MQTTFixedHeader.from_stream(cls: type[Self], reader: ReaderAdapter) -> Self | None
    call      amqtt.mqtt.suback.SubackPacket.build(cls, packet_id: int, return_codes: list[int]) -> Self
    call      amqtt.mqtt.unsuback.UnsubackPacket.build(cls, packet_id: int) -> Self

amqtt's handler code EdgeHandler, Connection and Router reuse: packet handlers, the QoS flows for the
directions edgemq leaves to amqtt, teardown.
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._handle_message_flow(self,
                  app_message: IncomingApplicationMessage | OutgoingApplicationMessage) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._handle_qos1_message_flow(self,
                  app_message: OutgoingApplicationMessage | IncomingApplicationMessage) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._handle_qos2_message_flow(self,
                  app_message: OutgoingApplicationMessage | IncomingApplicationMessage) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._send_packet(self, packet: PublishPacket |
                  PubackPacket | ConnackPacket | SubackPacket | ConnectPacket | SubscribePacket | UnsubscribePacket |
                  DisconnectPacket | PingReqPacket | PubrelPacket | PubrecPacket | PubcompPacket | PingRespPacket |
                  UnsubackPacket) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.attach(self, session: Session,
                  reader: ReaderAdapter, writer: WriterAdapter) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_connection_closed(self) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_disconnect(self,
                  disconnect: DisconnectPacket | None) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_pingreq(self,
                  pingreq: PingReqPacket) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_pubrec(self, pubrec: PubrecPacket) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.handle_pubrel(self, pubrel: PubrelPacket) -> None
    call      amqtt.mqtt.pubrel.PubrelPacket.build(cls, packet_id: int) -> Self
    call      amqtt.plugins.manager.PluginManager.fire_event(self, event_name: Events, *, wait: bool = False,
                  **method_kwargs: Any) -> None

Application messages built by the adapter (OutgoingCopy and QueuedMessage add the copy's row in the
store); Session's own state callbacks, called by EdgeSession's light connection state in place of the
transitions machine.
    override  amqtt.broker.RetainedApplicationMessage.__init__(self, source_session: Session | None, topic: str,
                  data: bytes | bytearray, qos: int | None = None) -> None
    override  amqtt.session.OutgoingApplicationMessage.__init__(self, packet_id: int | None, topic: str,
                  qos: int | None, data: bytes | bytearray, retain: bool) -> None
    call      amqtt.session.IncomingApplicationMessage.__init__(self, packet_id: int | None, topic: str,
                  qos: int | None, data: bytes, retain: bool) -> None
    call      amqtt.session.OutgoingApplicationMessage.__init__(self, packet_id: int | None, topic: str,
                  qos: int | None, data: bytes | bytearray, retain: bool) -> None
    call      amqtt.session.OutgoingApplicationMessage.build_publish_packet(self, dup: bool = False) -> PublishPacket
    call      amqtt.session.Session.__getstate__(self) -> dict[str, Any]
    call      amqtt.session.Session.__init__(self) -> None
    call      amqtt.session.Session._on_enter_connected(self) -> None
    call      amqtt.session.Session._on_enter_disconnected(self) -> None

Encoded packets written directly (MQTT 5 packets, refusing CONNACKs), and amqtt's QoS 0 flow for 3.1.1.
    call      amqtt.adapters.WriterAdapter.drain(self) -> None
    call      amqtt.adapters.WriterAdapter.write(self, data: bytes) -> None
    call      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._handle_qos0_message_flow(self,
                  app_message: IncomingApplicationMessage | OutgoingApplicationMessage) -> None

-- read: amqtt attributes the adapter reads or sets --

Broker state edgemq reads and changes directly: amqtt's sessions by client id (connected and offline;
amqtt has no public API for them) and the plugin manager.
    read      amqtt.broker.Broker._sessions
    read      amqtt.broker.Broker.plugins_manager

ACL actions and the names of amqtt's events.
    read      amqtt.contexts.Action.PUBLISH
    read      amqtt.contexts.Action.RECEIVE
    read      amqtt.contexts.Action.SUBSCRIBE
    read      amqtt.events.BrokerEvents.CLIENT_CONNECTED
    read      amqtt.events.BrokerEvents.CLIENT_DISCONNECTED
    read      amqtt.events.BrokerEvents.CLIENT_SUBSCRIBED
    read      amqtt.events.BrokerEvents.CLIENT_UNSUBSCRIBED
    read      amqtt.events.BrokerEvents.MESSAGE_BROADCAST
    read      amqtt.events.BrokerEvents.MESSAGE_RECEIVED
    read      amqtt.events.BrokerEvents.RETAINED_MESSAGE
    read      amqtt.events.MQTTEvents.PACKET_RECEIVED
    read      amqtt.events.MQTTEvents.PACKET_SENT

Handler attributes amqtt's methods use: EdgeHandler.__init__ sets the waiters, loop and write lock
in place of amqtt's __init__ (SUBSCRIBE and UNSUBSCRIBE never reach amqtt's queues: the Connection applies them).
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._loop
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._puback_waiters
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._pubcomp_waiters
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._pubrec_waiters
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._pubrel_waiters
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler._write_lock
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.plugins_manager
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.session

Fields of decoded acknowledgements.
    read      amqtt.mqtt.puback.PubackPacket.variable_header
    read      amqtt.mqtt.pubcomp.PubcompPacket.packet_id

The loaded plugins and their event table (private: edgemq guards each callback and skips building
events and packet objects when no plugin listens).
    read      amqtt.plugins.manager.PluginManager._event_plugin_callbacks
    read      amqtt.plugins.manager.PluginManager.plugins

State of an outgoing QoS 1/2 flow (EdgeHandler runs the outgoing flows itself).
    read      amqtt.session.OutgoingApplicationMessage.direction
    read      amqtt.session.OutgoingApplicationMessage.packet_id
    read      amqtt.session.OutgoingApplicationMessage.puback_packet
    read      amqtt.session.OutgoingApplicationMessage.pubcomp_packet
    read      amqtt.session.OutgoingApplicationMessage.publish_packet
    read      amqtt.session.OutgoingApplicationMessage.pubrec_packet
    read      amqtt.session.OutgoingApplicationMessage.pubrel_packet
    read      amqtt.session.OutgoingApplicationMessage.qos

Session fields: connection data copied on resume, will, queues and in-flight tables, the session-present
flag (parent), packet ids; the lazy queues and fresh tables of EdgeSession are named as strings.
    read      amqtt.session.Session.attributes
    read      amqtt.session.Session.clean_session
    read      amqtt.session.Session.client_id
    read      amqtt.session.Session.delivered_message_queue
    read      amqtt.session.Session.inflight_in
    read      amqtt.session.Session.inflight_out
    read      amqtt.session.Session.keep_alive
    read      amqtt.session.Session.next_packet_id
    read      amqtt.session.Session.parent
    read      amqtt.session.Session.password
    read      amqtt.session.Session.remote_address
    read      amqtt.session.Session.remote_port
    read      amqtt.session.Session.retained_messages
    read      amqtt.session.Session.ssl_object
    read      amqtt.session.Session.transitions
    read      amqtt.session.Session.username
    read      amqtt.session.Session.will_flag
    read      amqtt.session.Session.will_message
    read      amqtt.session.Session.will_qos
    read      amqtt.session.Session.will_retain
    read      amqtt.session.Session.will_topic

MQTT 5 copies: what an outgoing message is encoded from, and the writer of a websocket connection.
    read      amqtt.mqtt.protocol.broker_handler.BrokerProtocolHandler.writer
    read      amqtt.session.OutgoingApplicationMessage.data
    read      amqtt.session.OutgoingApplicationMessage.retain
    read      amqtt.session.OutgoingApplicationMessage.topic
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["KINDS", "SeamEntry", "entries", "parse"]

KINDS = ("import", "override", "call", "read")
_ENTRY = re.compile(r"^    (import|override|call|read) +(amqtt(?:\.\w+)+)(\(.*)?$")
_CONTINUATION = re.compile(r"^ {14,}(\S.*)$")
_WIDTH = 120
_INDENT = " " * 18


@dataclass(frozen=True)
class SeamEntry:
    """One amqtt name the adapter uses: its kind, dotted name and, for a function or method, signature."""

    kind: str
    name: str
    signature: str | None = None

    def line(self) -> str:
        """The entry as this list writes it: wrapped at ``_WIDTH`` columns, after a comma where possible."""
        text = f"{self.name}{self.signature or ''}"
        words = [w for part in re.split(r"(?<=,) ", text) for w in _pieces(part)]
        lines, current = [], f"    {self.kind:<10}{words[0]}"
        for word in words[1:]:
            if len(current) + 1 + len(word) > _WIDTH:
                lines.append(current)
                current = _INDENT + word
            else:
                current += " " + word
        return "\n".join([*lines, current])


def _pieces(part: str) -> list[str]:
    """A parameter kept whole if it fits on a line, else split at its spaces."""
    return [part] if len(part) <= _WIDTH - len(_INDENT) else part.split(" ")


def parse(doc: str) -> list[SeamEntry]:
    """The entries of a list written as in this module's docstring (other lines are notes)."""
    found: list[SeamEntry] = []
    for line in doc.splitlines():
        if (entry := _ENTRY.match(line)) is not None:
            found.append(SeamEntry(entry[1], entry[2], entry[3]))
        elif (more := _CONTINUATION.match(line)) is not None and found and found[-1].signature is not None:
            last = found[-1]
            found[-1] = SeamEntry(last.kind, last.name, f"{last.signature} {more[1]}")
    return found


def entries() -> list[SeamEntry]:
    """The seam as this module's docstring lists it."""
    return parse(__doc__ or "")

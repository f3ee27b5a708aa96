"""The only place that imports amqtt (pinned to 0.12.1): edgemq's adapter around it.

- ``core``: ``MqttCore``, amqtt's broker behind the listeners edgemq binds itself.
- ``edge_broker``: the ``Broker`` subclass: connection lifecycle, routing, counting.
- ``handler``: the protocol handler subclass.
- ``framed_reader``: amqtt's reader interface over whole, checked packets.
- ``outbox``: direct writes, one per connection and loop turn.
- ``session``: amqtt's session with a light connection state, made from a CONNECT.

amqtt internals overridden or replaced (for whoever upgrades amqtt): ``Broker._client_connected``
(edgemq enters through ``EdgeAmqttBroker.serve_connection``), ``_initialize_client_session``,
``_handle_client_session`` (replaces ``_client_message_loop``), ``_handle_disconnect``,
``_authenticate``, ``_broadcast_message``, ``add_subscription``, ``_del_subscription``,
``_del_all_subscriptions``, ``_delete_session``, ``_cleanup_session``,
``_publish_retained_messages_for_subscription``; ``BrokerProtocolHandler.__init__`` (same
attributes, some made on first use), ``_init_session``, ``init_from_connect`` (replaced by
``from_connect``), ``start``, ``stop``, ``_reader_loop`` (replaced by ``serve``, run by the
connection's task), ``_send_packet``, ``handle_read_timeout``, ``handle_connect``,
``handle_disconnect``, ``handle_publish``, ``handle_subscribe``, ``handle_unsubscribe``,
``_handle_qos1_message_flow``, ``_handle_qos2_message_flow`` (outgoing
direction); ``Session.__init__`` (``session``: ``EdgeSession``, same attributes, queues made
on first use, a light connection state instead of ``transitions``).
"""

from broker.amqtt_adapter.core import MqttCore

__all__ = ["MqttCore"]

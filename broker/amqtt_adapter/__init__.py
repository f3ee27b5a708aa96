"""The only place that imports amqtt (pinned to 0.12.1): edgemq's adapter around it.

- ``core``: ``MqttCore``, amqtt's broker behind the listeners edgemq binds itself.
- ``edge_broker``: the ``Broker`` subclass: connection lifecycle, routing, counting.
- ``handler``: the protocol handler subclass and the packet-framing reader.

amqtt internals overridden (for whoever upgrades amqtt): ``Broker._initialize_client_session``,
``_handle_client_session``, ``_client_message_loop``, ``_handle_disconnect``, ``_handle_message_delivery``,
``_broadcast_message``, ``add_subscription``, ``_del_subscription``, ``_delete_session``,
``_cleanup_session``, ``_publish_retained_messages_for_subscription``;
``BrokerProtocolHandler.handle_read_timeout``, ``_retry_deliveries``,
``_handle_qos1_message_flow``, ``_handle_qos2_message_flow`` (outgoing direction); amqtt's
``external`` listener is fed through ``Broker.external_connected`` with edgemq's reader.
"""

from broker.amqtt_adapter.core import MqttCore

__all__ = ["MqttCore"]

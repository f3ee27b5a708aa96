"""The only place that imports amqtt (pinned to 0.12.1): edgemq's adapter around it.

- ``core``: ``MqttCore``, amqtt's broker behind the listeners edgemq binds itself.
- ``edge_broker``: the ``Broker`` subclass: connection lifecycle.
- ``router``: its routing half (a base class of it): publishing, subscriptions, retained messages.
- ``connection``: one client's connection: reads its packets, delivers the copies routed to it.
- ``handler``: the protocol handler subclass.
- ``access``: who may connect and use which topics: edgemq's checks, ``http_auth``, users' plugins.
- ``plugin_loading``: the ``plugins`` section: amqtt plugins found, checked, handed to amqtt.
- ``plugin_events``: amqtt's plugin events, guarded and fired only when a plugin listens.
- ``keyed_locks``: one lock per client id, for take-over.
- ``framed_reader``: amqtt's reader interface over whole, checked packets.
- ``outbox``: direct writes, one per connection and loop turn.
- ``session``: amqtt's session with a light connection state, made from a CONNECT.
- ``seam``: the amqtt seam, for whoever upgrades amqtt: every amqtt name this package imports,
  overrides, calls or reads, with amqtt's signatures, in one list (its docstring) that
  tests/unit/test_amqtt_seam.py checks against the installed amqtt and against this package's code.

amqtt code replaced without being overridden, so in no list (nothing here calls it; an upgrade that
changes it may need the same change here): ``Broker._handle_client_session`` with its
``_client_message_loop``, ``_handle_disconnect``, ``_handle_subscription``, ``_handle_unsubscription``
and ``_publish_retained_messages_for_subscription`` (by ``EdgeAmqttBroker.serve_connection``,
``Connection.serve`` and ``Router``), ``Broker._initialize_client_session`` (by
``EdgeAmqttBroker._read_connect``), ``BrokerProtocolHandler.init_from_connect`` (by
``EdgeHandler.from_connect``), ``ProtocolHandler._reader_loop`` (by ``Connection.serve``).
"""

from broker.amqtt_adapter.core import MqttCore
from broker.amqtt_adapter.plugin_loading import PluginError, check_plugins

__all__ = ["MqttCore", "PluginError", "check_plugins"]

"""The only place that imports amqtt (pinned to 0.12.1): edgemq's adapter around it.

- ``core``: ``MqttCore``, amqtt's broker behind the listeners edgemq binds itself.
- ``edge_broker``: the ``Broker`` subclass: connection lifecycle, routing, counting.
- ``handler``: the protocol handler subclass.
- ``framed_reader``: amqtt's reader interface over whole, checked packets.
- ``outbox``: direct writes, one per connection and loop turn.
- ``session``: amqtt's session with a light connection state, made from a CONNECT.
- ``seam``: the amqtt seam, for whoever upgrades amqtt: every amqtt name this package imports,
  overrides, calls or reads, with amqtt's signatures, in one list (its docstring) that
  tests/unit/test_amqtt_seam.py checks against the installed amqtt and against this package's code.

amqtt code replaced without being overridden, so in no list (nothing here calls it; an upgrade that
changes it may need the same change here): ``Broker._client_message_loop`` (by
``_handle_client_session``), ``BrokerProtocolHandler.init_from_connect`` (by
``EdgeHandler.from_connect``), ``ProtocolHandler._reader_loop`` (by ``EdgeHandler.serve``).
"""

from broker.amqtt_adapter.core import MqttCore

__all__ = ["MqttCore"]

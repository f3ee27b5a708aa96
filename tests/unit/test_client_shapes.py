"""The MQTT 5 fields of a client entry (v1 req 5, v4 client objects): for protocol 5 only."""

from __future__ import annotations

from datetime import UTC, datetime

from admin_api.shapes import mqtt5_fields
from broker.state import ClientInfo


def connect(protocol: int, **mqtt5: int | None) -> ClientInfo:
    """A ClientInfo as a connect makes one (positionally), with MQTT 5 settings by name."""
    info = ClientInfo("c", "", 60, protocol, True, "127.0.0.1", 5000, datetime.now(UTC), None, None)
    for name, value in mqtt5.items():
        setattr(info, name, value)
    return info


def test_an_mqtt5_client_shows_its_connection_settings() -> None:
    """Protocol 5: session expiry, receive maximum, maximum packet size, topic alias maximum."""
    info = connect(5, session_expiry_interval=300, receive_maximum=20, maximum_packet_size=4096, topic_alias_maximum=8)
    assert mqtt5_fields(info) == {
        "session_expiry_interval": 300,
        "receive_maximum": 20,
        "maximum_packet_size": 4096,
        "topic_alias_maximum": 8,
    }


def test_an_mqtt5_client_that_set_nothing_shows_the_standard_defaults() -> None:
    """Protocol 5 with no CONNECT properties: 0, 65535, no limit (None), 0 (MQTT 5.0 3.1.2.11)."""
    assert mqtt5_fields(connect(5)) == {
        "session_expiry_interval": 0,
        "receive_maximum": 65_535,
        "maximum_packet_size": None,
        "topic_alias_maximum": 0,
    }


def test_mqtt311_and_mqtt31_clients_show_none() -> None:
    """Protocols 4 and 3 add no field, whatever the record holds."""
    assert mqtt5_fields(connect(4, session_expiry_interval=300)) == {}
    assert mqtt5_fields(connect(3)) == {}

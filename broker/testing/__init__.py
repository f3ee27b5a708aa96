"""Support for tests that embed the broker: captures and waits, a broker on a background
thread, and the pytest plugin (fixtures ``mqtt_broker`` and ``mqtt_broker_async``)."""

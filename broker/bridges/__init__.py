"""MQTT bridges to upstream brokers: store-and-forward of local messages, remote subscriptions (issue 15)."""

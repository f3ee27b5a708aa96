"""The MQTT protocol as edgemq speaks it, without amqtt: framing, topics and the topic trie,
listeners and their connections, client authentication and the ACL."""

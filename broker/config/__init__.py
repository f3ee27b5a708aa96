"""Configuration: typed settings, the HOCON file and its includes, and live changes (req 12)."""

"""edgemq's NanoMQ-compatible admin HTTP API (Starlette)."""

from admin_api.app import create_app

__all__ = ["create_app"]

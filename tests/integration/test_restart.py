"""req 10 restart: what it takes from the configuration when part of it cannot be applied."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from broker.config.source import override_path
from tests.helpers import taken_port
from tests.integration.test_config_api import broker_from_file

pytestmark = pytest.mark.anyio


async def test_failed_admin_move_keeps_the_new_credentials(tmp_path: Path) -> None:
    """A restart that cannot move the admin API keeps its address but applies the new password."""
    async with broker_from_file(tmp_path) as (broker, _api, conf):
        with taken_port() as port:
            override_path(conf).write_text(f'http_server {{ port = {port}, password = "n3w-s3cret" }}\n')
            await broker.restart()
        assert broker.admin_auth == ("admin", "n3w-s3cret")
        async with httpx.AsyncClient(base_url=broker.api_url) as http:
            old = await http.post("/v1", json={"req": 2, "seq": 1}, auth=("admin", "first-secret"))
            new = await http.post("/v1", json={"req": 2, "seq": 1}, auth=("admin", "n3w-s3cret"))
        assert (old.status_code, new.status_code) == (401, 200)

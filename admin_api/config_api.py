"""Configuration and control, shared by v1 (req 10, 11, 12) and v4 (/configuration, /ctrl)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from broker.config_changes import ConfigUnavailable
from broker.config_file import ConfigError, masked

__all__ = ["change_config", "control_action", "run_in_loop", "running_config"]

log = logging.getLogger("edgemq.api")


def running_config(ctx: ApiContext) -> dict[str, Any]:
    """The running configuration in the config file's shape, secrets as ``******``."""
    data = masked(ctx.settings.current.model_dump(mode="json"))
    assert isinstance(data, dict)
    return data


def change_config(ctx: ApiContext, change: object) -> dict[str, list[str]]:
    """Validate, write and apply what can be applied live; name the keys that need a restart."""
    if not isinstance(change, dict):
        raise ApiError(400, ResultCode.PARAMETER_ERROR)
    try:
        restart_required = ctx.control.update_config(change)
    except ConfigUnavailable:
        raise ApiError(400, ResultCode.CONFIG_WRITE_FAILED) from None
    except ConfigError as exc:
        log.info("configuration change refused: %s", "; ".join(exc.problems))
        raise ApiError(400, ResultCode.PARAMETER_ERROR) from None
    except OSError as exc:
        log.error("cannot write the configuration: %s", exc)
        raise ApiError(500, ResultCode.CONFIG_WRITE_FAILED) from None
    return {"restart_required": restart_required}


def control_action(ctx: ApiContext, action: object) -> Callable[[], None]:
    """What ``stop`` or ``restart`` (any case) will do once the answer is sent."""
    actions = {"stop": ctx.control.request_stop, "restart": ctx.control.request_restart}
    chosen = actions.get(action.lower()) if isinstance(action, str) else None
    if chosen is None:
        raise ApiError(400, ResultCode.PARAMETER_ERROR)
    return chosen


async def run_in_loop(action: Callable[[], None]) -> None:
    """Background-task body: Starlette runs plain functions on a worker thread; control acts in the loop."""
    action()

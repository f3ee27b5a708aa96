"""Configuration and control, shared by v1 (req 10, 11, 12) and v4 (/configuration, /ctrl)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from admin_api.codes import ResultCode
from admin_api.context import ApiContext
from admin_api.errors import ApiError
from broker.config.changes import ConfigUnavailable
from broker.config.source import ConfigError, masked

__all__ = ["change_config", "control_action", "refused_change", "run_in_loop", "running_config"]

log = logging.getLogger("edgemq.api")


def running_config(ctx: ApiContext) -> dict[str, Any]:
    """The running configuration in the config file's shape, secrets as ``******``."""
    data = masked(ctx.settings.current.model_dump(mode="json"))
    assert isinstance(data, dict)
    return data


def change_config(ctx: ApiContext, change: object) -> dict[str, list[str]]:
    """Validate, write and apply what can be applied live; name the keys that need a restart."""
    if not isinstance(change, dict):
        raise ApiError(400, ResultCode.PARAMETER_ERROR, message="data: expected an object of settings")
    try:
        restart_required = ctx.control.update_config(change)
    except ConfigUnavailable:
        raise ApiError(
            400, ResultCode.CONFIG_WRITE_FAILED, message="the broker was started without a configuration file"
        ) from None
    except ConfigError as exc:
        raise refused_change(exc) from None
    except OSError as exc:
        log.error("cannot write the configuration: %s", exc)
        raise ApiError(
            500, ResultCode.CONFIG_WRITE_FAILED, message="the configuration file cannot be written"
        ) from None
    return {"restart_required": restart_required}


def refused_change(error: ConfigError) -> ApiError:
    """400/108 naming every key that was refused and why (also logged)."""
    message = "; ".join(problem.removeprefix("requested change: ") for problem in error.problems)
    log.info("configuration change refused: %s", message)
    return ApiError(400, ResultCode.PARAMETER_ERROR, message=message)


def control_action(ctx: ApiContext, action: object) -> Callable[[], None]:
    """What ``stop`` or ``restart`` (any case) will do once the answer is sent."""
    actions = {"stop": ctx.control.request_stop, "restart": ctx.control.request_restart}
    chosen = actions.get(action.lower()) if isinstance(action, str) else None
    if chosen is None:
        raise ApiError(400, ResultCode.PARAMETER_ERROR, message="action must be stop or restart")
    return chosen


async def run_in_loop(action: Callable[[], None]) -> None:
    """Background-task body: Starlette runs plain functions on a worker thread; control acts in the loop."""
    action()

"""Result codes of the NanoMQ admin API (spec section 1)."""

from enum import IntEnum

__all__ = ["ResultCode"]


class ResultCode(IntEnum):
    """The ``code`` field of every admin API answer."""

    OK = 0
    RPC_ERROR = 101
    UNKNOWN_ERROR = 102
    WRONG_CREDENTIALS = 103
    EMPTY_CREDENTIALS = 104
    USER_NOT_FOUND = 105
    ADMIN_CANNOT_BE_DELETED = 106
    MISSING_PARAMETER = 107
    PARAMETER_ERROR = 108
    INVALID_JSON = 109
    PLUGIN_ALREADY_ON = 110
    PLUGIN_ALREADY_OFF = 111
    CLIENT_NOT_FOUND = 112
    USER_EXISTS = 113
    OLD_PASSWORD_WRONG = 114
    ILLEGAL_TOPIC = 115
    TOKEN_EXPIRED = 116
    INVALID_HOCON = 117
    CONFIG_WRITE_FAILED = 118

"""Basic auth parsing and comparison (spec section 1)."""

from __future__ import annotations

import base64

import pytest

from admin_api.auth import basic_auth_failure
from admin_api.codes import ResultCode


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (basic("admin:public"), None),
        (None, ResultCode.EMPTY_CREDENTIALS),
        ("", ResultCode.EMPTY_CREDENTIALS),
        ("Basic", ResultCode.EMPTY_CREDENTIALS),
        ("Bearer abc", ResultCode.EMPTY_CREDENTIALS),
        (basic(":public"), ResultCode.EMPTY_CREDENTIALS),
        (basic("admin:"), ResultCode.EMPTY_CREDENTIALS),
        (basic("admin:wrong"), ResultCode.WRONG_CREDENTIALS),
        (basic("root:public"), ResultCode.WRONG_CREDENTIALS),
        (basic("adminpublic"), ResultCode.WRONG_CREDENTIALS),
        ("Basic !!!notbase64", ResultCode.WRONG_CREDENTIALS),
        ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(), ResultCode.WRONG_CREDENTIALS),
        ("basic " + base64.b64encode(b"admin:public").decode(), None),
        ("Basic \xc3\xa9\xff", ResultCode.WRONG_CREDENTIALS),
        ("Basic YWRt\xe9aW46cHVibGlj", ResultCode.WRONG_CREDENTIALS),
        ("B\xe4sic YWRtaW46cHVibGlj", ResultCode.EMPTY_CREDENTIALS),
        ("Basic " + base64.b64encode("admin:p\xe4ss".encode("latin-1")).decode(), ResultCode.WRONG_CREDENTIALS),
    ],
)
def test_basic_auth(header: str | None, expected: ResultCode | None) -> None:
    """Each kind of Authorization header, malformed ones included, gets its result code and a 401."""
    failure = basic_auth_failure(header, "admin", "public")
    if expected is None:
        assert failure is None
    else:
        assert failure is not None
        assert (failure.status, failure.code) == (401, expected)
        assert failure.message

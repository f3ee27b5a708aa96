"""Basic auth parsing and comparison (spec section 1)."""

from __future__ import annotations

import base64

import pytest

from admin_api.auth import check_basic_auth
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
    ],
)
def test_basic_auth(header: str | None, expected: ResultCode | None) -> None:
    """Each kind of Authorization header gets its result code."""
    assert check_basic_auth(header, "admin", "public") == expected

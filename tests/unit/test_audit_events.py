from __future__ import annotations

from keyhall.audit.events import mask_user_name, redact


def test_redact_hides_secret_looking_keys_recursively() -> None:
    value = {
        "UserName": "alice",
        "password": "hunter2",
        "refreshToken": "rt",
        "nested": [{"clientSecret": "s", "accessKeyId": "ASIA123", "userCode": "ABCD-EFGH"}],
        "CodeVerifier": "v",
    }
    assert redact(value) == {
        "UserName": "alice",
        "password": "HIDDEN",
        "refreshToken": "HIDDEN",
        "nested": [{"clientSecret": "HIDDEN", "accessKeyId": "ASIA123", "userCode": "ABCD-EFGH"}],
        "CodeVerifier": "HIDDEN",
    }


def test_mask_user_name() -> None:
    assert mask_user_name("alice") == "a***e"
    assert mask_user_name("ab") == "**"

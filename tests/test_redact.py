"""One redaction function: credentials in URLs, token-like query parameters, known secrets."""

from __future__ import annotations

import pytest

from probed.redact import redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgres://app:s3cretpw@db.internal:5432/orders", "postgres://app:***@db.internal:5432/orders"),
        ("redis://:hunter22@cache:6379/0", "redis://:***@cache:6379/0"),
        ("https://user:pa55word@api.example.com/x", "https://user:***@api.example.com/x"),
        ("https://api.example.com/health?token=abc123&x=1", "https://api.example.com/health?token=***&x=1"),
        ("https://h/p?X-Amz-Signature=deadbeef&X-Amz-Credential=AKIA/x", "https://h/p?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("https://h/p?api_key=k&page=2", "https://h/p?api_key=***&page=2"),
        ("postgres://app@db:5432/orders", "postgres://app@db:5432/orders"),
        ("https://example.com/health?page=2", "https://example.com/health?page=2"),
        ("", ""),
    ],
    ids=["dsn", "redis-password-only", "https-userinfo", "token-param", "presigned-url", "api-key", "no-password",
         "harmless-query", "empty"],
)
def test_redacts_credentials_in_urls(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_known_secrets_are_masked_wherever_they_appear() -> None:
    detail = "401 from https://api/x with Authorization: Bearer eyJhbGciOi.payload.sig (token eyJhbGciOi.payload.sig)"
    out = redact(detail, {"eyJhbGciOi.payload.sig", "Bearer eyJhbGciOi.payload.sig"})
    assert "eyJhbGciOi" not in out
    assert out.count("***") == 2


def test_very_short_secrets_are_not_substring_masked() -> None:
    # Masking every "ab" would mangle text and reveal the secret by its gaps.
    assert redact("about a tab", {"ab"}) == "about a tab"

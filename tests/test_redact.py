"""One redaction function: credentials in URLs, token-like query parameters, known secrets."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from probed.redact import ENVIRONMENT_SECRETS, excerpt, forget_all, redact, remember


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


# --------------------------------------------------------------------------- issue 12 item 13


@pytest.fixture(autouse=True)
def _clean_registry(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENVIRONMENT_SECRETS:
        monkeypatch.delenv(name, raising=False)
    forget_all()
    yield
    forget_all()


@pytest.mark.parametrize("shown", [
    "p\\xc3\\xa4ssw0rd-42",  # repr() of the UTF-8 bytes (a TCP detail)
    "p\\xe4ssw0rd-42",  # repr() of a str with the character escaped
    "p\\u00e4ssw0rd-42",  # JSON (the API's facts)
    "p%C3%A4ssw0rd-42",  # percent-encoded (a URL)
    "pässw0rd-42",  # raw
], ids=["bytes-repr", "str-escape", "json", "percent", "raw"])
def test_a_non_ascii_secret_is_masked_in_every_escaped_form(shown: str) -> None:
    assert redact(f"received b'AUTH {shown}\\r\\n'", {"pässw0rd-42"}) == "received b'AUTH ***\\r\\n'"


def test_redact_then_clip_never_shows_a_prefix_of_a_secret() -> None:
    secret = "HDRSECRET-" + "q" * 100
    text = 'header X-Echo: "Bearer ' + secret + '" does not match'
    assert "HDRSECR" not in redact(text, {secret}, limit=40)
    assert "HDRSECR" not in excerpt(text, {secret}, 40)
    # excerpt() redacts only a prefix of a huge text, long enough for a secret crossing the cut.
    huge = "x" * 70 + secret + "y" * 10_000_000
    assert excerpt(huge, {secret}, 80) == "x" * 70 + "***" + "y" * 7 + "..."


def test_environment_aws_credentials_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJHMEUCIQ")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    echoed = ("403 from https://sts/: X-Amz-Security-Token: IQoJb3JpZ2luX2VjEHoaCXVzLWVhc3QtMSJHMEUCIQ, "
              "secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
    assert redact(echoed) == "403 from https://sts/: X-Amz-Security-Token: ***, secret ***"
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")  # an emulator's placeholder is not a secret
    assert redact("integration testing") == "integration testing"


def test_remembered_secrets_are_masked_by_every_call() -> None:
    assert redact("ExternalId=ext-1234-planted") == "ExternalId=ext-1234-planted"
    remember(frozenset({"ext-1234-planted"}))
    assert redact("ExternalId=ext-1234-planted") == "ExternalId=***"
    forget_all()
    assert redact("ExternalId=ext-1234-planted") == "ExternalId=ext-1234-planted"

"""Files a TLS section names are read at config time without ever blocking, and targets are host:port."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from probed.config.schema import ConfigError
from probed.runtime.probeset import parse_config


@pytest.mark.parametrize("kind", ["fifo", "directory", "dev-zero"])
def test_a_ca_file_that_is_not_a_regular_file_is_an_error_not_a_hang(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "ca.pem"
    if kind == "fifo":
        os.mkfifo(path)  # opening it for reading would wait for a writer forever
    elif kind == "directory":
        path.mkdir()
    else:
        path = Path("/dev/zero")  # never ends
    with pytest.raises(ConfigError) as error:
        parse_config(f'probes: [{{name: t, type: tls, target: "example.com:443", tls: {{ca_file: "{path}"}}}}]\n',
                     "t.yaml", {})
    assert "not a regular file" in str(error.value) and "tls.ca_file" in str(error.value)


def test_a_url_as_a_tls_target_says_so() -> None:
    with pytest.raises(ConfigError) as error:
        parse_config('probes: [{name: t, type: tls, target: "https://example.com:443/"}]\n', "t.yaml", {})
    assert "expected host:port, not a URL" in str(error.value)
    assert "IPv6" not in str(error.value)

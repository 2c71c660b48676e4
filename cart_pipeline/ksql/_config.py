"""Client settings read from ``CART_KSQLDB_*`` environment variables.

Parsed strictly: a typo in an env var should fail at start-up with a message
naming the variable, not as a confusing TLS or auth error later.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ._errors import KsqlConfigError

DEFAULT_URL = "http://127.0.0.1:8088"
DEFAULT_TIMEOUT_S = 30.0

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


@dataclass(frozen=True)
class EnvSettings:
    url: str
    username: str | None
    password: str | None
    timeout: float
    verify: bool | Path

    def __repr__(self) -> str:
        secret = "***" if self.password else None
        return (
            f"EnvSettings(url={self.url!r}, username={self.username!r}, password={secret!r}, "
            f"timeout={self.timeout!r}, verify={self.verify!r})"
        )


def _timeout(raw: str | None) -> float:
    if raw is None or not raw.strip():
        return DEFAULT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise KsqlConfigError(f"CART_KSQLDB_TIMEOUT_S must be a number, got {raw!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise KsqlConfigError(f"CART_KSQLDB_TIMEOUT_S must be > 0, got {raw!r}")
    return value


def _verify(raw: str | None) -> bool | Path:
    if raw is None or not raw.strip():
        return True
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    path = Path(raw.strip()).expanduser()
    if not path.exists():
        raise KsqlConfigError(
            f"CART_KSQLDB_VERIFY must be true/false or an existing CA bundle path, got {raw!r}"
        )
    return path


def settings_from_env(environ: Mapping[str, str]) -> EnvSettings:
    """Read and validate the ``CART_KSQLDB_*`` variables from ``environ``."""
    username = environ.get("CART_KSQLDB_USERNAME") or None
    password = environ.get("CART_KSQLDB_PASSWORD") or None
    if (username is None) != (password is None):
        missing = "CART_KSQLDB_PASSWORD" if password is None else "CART_KSQLDB_USERNAME"
        raise KsqlConfigError(f"{missing} is not set; set both username and password or neither")
    return EnvSettings(
        url=(environ.get("CART_KSQLDB_URL") or DEFAULT_URL).strip(),
        username=username,
        password=password,
        timeout=_timeout(environ.get("CART_KSQLDB_TIMEOUT_S")),
        verify=_verify(environ.get("CART_KSQLDB_VERIFY")),
    )

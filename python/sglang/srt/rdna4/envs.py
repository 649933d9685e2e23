"""Environment knobs of the RDNA4 paths, read with loud errors."""

from __future__ import annotations

import os


def env_int(name: str, default: int, minimum: int = 1) -> int:
    """Integer from the environment (default when unset or blank); below `minimum` is an error."""
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r} must be an integer") from None
    if value < minimum:
        raise ValueError(f"{name}={raw!r} must be an integer >= {minimum}")
    return value

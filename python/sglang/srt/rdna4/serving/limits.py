"""Per-request limits, read once from the environment (defaults follow OpenAI's API)."""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from sglang.srt.rdna4.envs import env_int

MIB = 1 << 20


@dataclass(frozen=True)
class RequestLimits:
    # OpenAI: /v1/completions `logprobs` <= 5, /v1/chat/completions `top_logprobs` <= 20.
    max_completion_logprobs: int = 5
    max_top_logprobs: int = 20
    # Choices per request (`n`); each choice is a full sequence in the scheduler.
    max_n: int = 128
    # Whole HTTP request body; 32 MiB holds ~8M prompt token ids as JSON, far above any context.
    max_body_bytes: int = 32 * MIB
    # Unknown `model` names get 404 (OpenAI's behaviour); 0 accepts any name (upstream's).
    strict_model_name: bool = True

    @classmethod
    def from_env(cls) -> RequestLimits:
        strict = os.environ.get("SGLANG_RDNA4_STRICT_MODEL_NAME", "1").strip().lower()
        if strict not in ("", "0", "1", "true", "false"):
            raise ValueError(f"SGLANG_RDNA4_STRICT_MODEL_NAME={strict!r} must be 0 or 1")
        return cls(
            max_completion_logprobs=env_int("SGLANG_RDNA4_MAX_LOGPROBS", cls.max_completion_logprobs, 0),
            max_top_logprobs=env_int("SGLANG_RDNA4_MAX_TOP_LOGPROBS", cls.max_top_logprobs, 0),
            max_n=env_int("SGLANG_RDNA4_MAX_N", cls.max_n, 1),
            max_body_bytes=env_int("SGLANG_RDNA4_MAX_REQUEST_BYTES", cls.max_body_bytes, 1024),
            strict_model_name=strict not in ("0", "false"),
        )


@functools.cache
def request_limits() -> RequestLimits:
    """The server's limits (environment read once per process)."""
    return RequestLimits.from_env()

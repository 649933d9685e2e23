"""Checks on request-shaped input, run before a request is tokenized or scheduled.

Each failure raises `RequestError` (a ValueError, so upstream's handlers answer 400) naming
the field, the bad value and the accepted range; it never echoes a whole prompt back.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sglang.srt.rdna4.serving.limits import RequestLimits, request_limits

# What the OpenAI request models fill in when the client sends no `model`.
DEFAULT_MODEL_NAME = "default"


class RequestError(ValueError):
    """A request the server refuses: HTTP status, OpenAI error type and the offending field."""

    def __init__(self, message: str, param: str | None = None, status_code: int = 400,
                 err_type: str = "BadRequestError"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.status_code = status_code
        self.err_type = err_type


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_int_range(value: Any, param: str, low: int, high: int, hint: str = "") -> None:
    """`value` must be an int in [low, high] (None passes: the field is unset)."""
    if value is None:
        return
    if not _is_int(value) or not low <= value <= high:
        raise RequestError(
            f"{param} must be an integer in [{low}, {high}], got {value!r}{hint}", param=param
        )


def check_token_ids(ids: Any, vocab_size: int, param: str) -> None:
    """Token ids (a list, or a list of lists) must be ints in [0, vocab_size)."""
    if ids is None:
        return
    if not isinstance(ids, (list, tuple)):
        raise RequestError(f"{param} must be a list of token ids, got {type(ids).__name__}",
                           param=param)
    rows: Iterable[tuple[str, Sequence[Any]]]
    if ids and isinstance(ids[0], (list, tuple)):
        rows = ((f"{param}[{i}]", row) for i, row in enumerate(ids))
    else:
        rows = ((param, ids),)
    for name, row in rows:
        if not isinstance(row, (list, tuple)):
            raise RequestError(f"{name} must be a list of token ids, got {type(row).__name__}",
                               param=param)
        for pos, tok in enumerate(row):
            if not _is_int(tok) or not 0 <= tok < vocab_size:
                raise RequestError(
                    f"{name} has token id {tok!r} at position {pos}, outside the model's "
                    f"vocabulary [0, {vocab_size}); use ids from the model's tokenizer or send text",
                    param=param,
                )


def _each(value: Any) -> list[Any]:
    """A batch field is either one value for all items or a list with one per item."""
    return list(value) if isinstance(value, list) else [value]


def validate_generate_input(obj: Any, vocab_size: int, limits: RequestLimits | None = None) -> None:
    """A native GenerateReqInput / EmbeddingReqInput, before upstream normalizes it.

    Catches what would otherwise fail inside the scheduler (token ids past the embedding,
    top-k over more than the vocabulary) or with an internal message (`n=0`).
    """
    limits = limits or request_limits()
    if getattr(obj, "input_embeds", None) is None:
        check_token_ids(getattr(obj, "input_ids", None), vocab_size, "input_ids")
    for params in _each(getattr(obj, "sampling_params", None)):
        if isinstance(params, dict):
            check_int_range(params.get("n"), "n", 1, limits.max_n,
                            " (set SGLANG_RDNA4_MAX_N to raise the cap)")
    for num in _each(getattr(obj, "top_logprobs_num", None)):
        check_int_range(num, "top_logprobs_num", 0, vocab_size, " (the vocabulary size)")
    token_ids_logprob = getattr(obj, "token_ids_logprob", None)
    if token_ids_logprob is not None:
        check_token_ids(token_ids_logprob, vocab_size, "token_ids_logprob")


def served_model_names(server_args: Any) -> frozenset[str]:
    names = {DEFAULT_MODEL_NAME, server_args.model_path}
    if server_args.served_model_name:
        names.add(server_args.served_model_name)
    return frozenset(names)


def check_model_name(model: Any, accepted: frozenset[str]) -> None:
    """Unknown `model` -> 404 like OpenAI. 'base:adapter' (LoRA) is judged by its base name."""
    base = model.split(":", 1)[0].strip() if isinstance(model, str) else model
    if base not in accepted:
        served = sorted(accepted - {DEFAULT_MODEL_NAME})
        raise RequestError(
            f"The model {model!r} does not exist on this server; it serves {served} "
            "(see GET /v1/models)",
            param="model", status_code=404, err_type="NotFoundError",
        )


def validate_openai_request(request: Any, server_args: Any, vocab_size: int | None = None,
                            limits: RequestLimits | None = None) -> None:
    """Limits on an OpenAI-style request (completions, chat, and others with these fields)."""
    limits = limits or request_limits()
    model = getattr(request, "model", None)
    if limits.strict_model_name and model is not None:
        check_model_name(model, served_model_names(server_args))
    if hasattr(request, "n"):
        check_int_range(request.n, "n", 1, limits.max_n,
                        " (set SGLANG_RDNA4_MAX_N to raise the cap)")
    kind = type(request).__name__
    if kind == "CompletionRequest":
        prompt = request.prompt
        if vocab_size is not None and isinstance(prompt, list) and prompt and not isinstance(prompt[0], str):
            check_token_ids(prompt, vocab_size, "prompt")
        check_int_range(request.logprobs, "logprobs", 0, limits.max_completion_logprobs,
                        " (set SGLANG_RDNA4_MAX_LOGPROBS to raise the cap)")
    elif kind == "ChatCompletionRequest":
        check_int_range(request.top_logprobs, "top_logprobs", 0, limits.max_top_logprobs,
                        " (set SGLANG_RDNA4_MAX_TOP_LOGPROBS to raise the cap)")

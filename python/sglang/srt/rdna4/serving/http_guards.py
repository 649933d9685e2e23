"""HTTP-level guards: a request body size cap, and 400 messages built from validation errors
without server internals (FastAPI's text carries the endpoint's source file and line)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from sglang.srt.rdna4.serving.limits import request_limits

_MODEL_CLASS_SUFFIXES = ("Param", "Request", "Input", "Format", "Choice", "Tool", "Function")
_TYPE_TAGS = {"str", "int", "float", "bool", "dict", "list", "none", "is-instance"}
_TAG_FIELDS = {"role", "type"}


def _error_body(message: str, err_type: str, status: int, param: str | None = None) -> bytes:
    return orjson.dumps(
        {"object": "error", "message": message, "type": err_type, "param": param, "code": status}
    )


def _field_path(loc: Sequence[Any]) -> str:
    """('body', 'messages', 0, 'ChatCompletionMessageUserParam', 'role') -> 'messages.0.role'."""
    parts = []
    for i, part in enumerate(loc):
        if i == 0 and part in ("body", "query", "header", "path"):
            continue
        # pydantic names the union member it tried; the client never wrote that name
        if _is_model_name(part):
            continue
        if isinstance(part, str) and ("[" in part or part.startswith("function-") or part in _TYPE_TAGS):
            continue
        parts.append(str(part))
    return ".".join(parts)


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _is_model_name(part: Any) -> bool:
    return isinstance(part, str) and part[:1].isupper() and part.endswith(_MODEL_CLASS_SUFFIXES)


def _intended_union_branches(errors: Sequence[dict]) -> list[dict]:
    """Drop the union members the client plainly did not mean.

    A chat message is a union over roles: `{"role": "user", "content": 5}` fails the
    non-user member on `role` and the user member on `content`; the content error is the
    one to report. A member failing on its tag field (`role`, `type`) is dropped when
    another member of the same union accepted the tag.
    """
    branches: dict[tuple, dict[str, list[dict]]] = {}
    for err in errors:
        loc = tuple(err.get("loc", ()))
        j = next((k for k, part in enumerate(loc) if _is_model_name(part)), None)
        if j is not None:
            branches.setdefault(loc[:j], {}).setdefault(loc[j], []).append(err)
    dropped: set[int] = set()
    for members in branches.values():
        if len(members) < 2:
            continue
        tag_failed = {name for name, errs in members.items()
                      if any(_field_path(e["loc"]).rsplit(".", 1)[-1] in _TAG_FIELDS for e in errs)}
        if tag_failed and tag_failed != set(members):
            dropped.update(id(e) for name in tag_failed for e in members[name])
    return [e for e in errors if id(e) not in dropped]


def describe_validation_errors(errors: Sequence[dict]) -> tuple[str, str | None]:
    """A client-facing message and the first offending field from pydantic/FastAPI errors.

    Union members fail together on one field; the first error with a custom message
    (`value_error`) speaks for that field.
    """
    by_field: dict[str, dict] = {}
    for err in _intended_union_branches(errors):
        path = _field_path(err.get("loc", ()))
        seen = by_field.get(path)
        if seen is None or (err.get("type") == "value_error" and seen.get("type") != "value_error"):
            by_field[path] = err
    lines = []
    for path, err in by_field.items():
        if err.get("type") == "json_invalid":
            lines.append(f"request body is not valid JSON ({err.get('ctx', {}).get('error', 'decode error')})")
            continue
        msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
        where = path or "request body"
        line = f"{where}: {msg}"
        if "input" in err and err.get("type") not in ("missing", "json_invalid"):
            line += f" (got {_short(err['input'])})"
        lines.append(line)
    first = next((path for path, err in by_field.items() if err.get("type") != "json_invalid"), None)
    return "; ".join(lines) or "invalid request", first or None


class BodySizeLimit:
    """ASGI middleware: bodies over the cap get 413 before the app reads them."""

    def __init__(self, app, max_bytes: int | None = None):
        self.app = app
        self.max_bytes = max_bytes or request_limits().max_body_bytes

    def _too_large(self) -> str:
        return (f"request body is larger than the server's limit of {self.max_bytes} bytes "
                "(set SGLANG_RDNA4_MAX_REQUEST_BYTES to change it)")

    async def _reply(self, send, status: int, message: str, err_type: str) -> None:
        body = _error_body(message, err_type, status)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or ()).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                return await self._reply(send, 400, "Content-Length is not an integer",
                                         "BadRequestError")
            if size > self.max_bytes:
                return await self._reply(send, 413, self._too_large(), "RequestTooLarge")
            return await self.app(scope, receive, send)

        # Chunked upload: count as the app reads; FastAPI passes an HTTPException through.
        from fastapi import HTTPException

        received = 0

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(status_code=413, detail=self._too_large())
            return message

        return await self.app(scope, counted_receive, send)


async def _starlette_http_error(request, exc):
    """FastAPI raises Starlette's HTTPException for an unreadable body (non-UTF-8), unknown
    routes and methods; answer those in the OpenAI error format too."""
    from fastapi.responses import Response

    detail = exc.detail if isinstance(exc.detail, str) else str(exc.detail)
    if detail == "There was an error parsing the body":
        detail = "request body could not be read as UTF-8 JSON"
    return Response(_error_body(detail, "BadRequestError" if exc.status_code == 400 else
                                str(exc.status_code), exc.status_code),
                    status_code=exc.status_code, media_type="application/json",
                    headers=getattr(exc, "headers", None))


def install(app) -> None:
    """Add the guards to the FastAPI app (once, at import of the HTTP server)."""
    from starlette.exceptions import HTTPException as StarletteHTTPException

    app.add_middleware(BodySizeLimit)
    app.add_exception_handler(StarletteHTTPException, _starlette_http_error)

"""Per-request fault isolation: an exception raised while serving some requests fails those
requests with a 500 and leaves the scheduler and detokenizer loops serving everyone else.

Validation (`validation.py`) keeps known-bad input out; this is the defence in depth for
what still raises. The traceback goes to the server log, the client gets a clean message.
"""

from __future__ import annotations

import dataclasses
import logging
import traceback
from collections import OrderedDict
from http import HTTPStatus
from typing import Any

from sglang.srt.rdna4.serving.messages import clean_message

logger = logging.getLogger(__name__)

_FAILED_RIDS_KEPT = 4096


def public_message(exc: BaseException, where: str) -> str:
    """A client-facing line for an internal failure: no source paths, bounded length."""
    detail = clean_message(str(exc)).split("\n", 1)[0][:200]
    text = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    return f"Internal error while {where} ({text}); the server logged the details and keeps serving"


def _abort_json(message: str) -> dict[str, Any]:
    return {"type": "abort", "message": message, "status_code": HTTPStatus.INTERNAL_SERVER_ERROR,
            "err_type": "InternalServerError"}


# ---- scheduler -------------------------------------------------------------------------

def fail_request(scheduler, req, message: str) -> None:
    """Finish `req` with a 500: free its KV without caching it (its KV may be half-written)
    and tell the tokenizer manager directly (the request's next output is suppressed)."""
    from sglang.srt.managers.io_struct import AbortReq
    from sglang.srt.managers.schedule_batch import FINISH_ABORT
    from sglang.srt.mem_cache.common import release_kv_cache

    if req.finished() and req.finished_output:
        return
    req.finished_reason = FINISH_ABORT(message, HTTPStatus.INTERNAL_SERVER_ERROR,
                                       "InternalServerError")
    req.to_finish = None
    if getattr(req, "req_pool_idx", None) is not None:
        # The cache frees the slots of input + output tokens, but under the overlap schedule
        # the tokens of the batch in flight are not in output_ids yet while their KV slots
        # are committed: pad with placeholders so every committed slot is freed (is_insert
        # is off, so the token values are never used).
        missing = req.kv_committed_len - len(req.origin_input_ids) - len(req.output_ids)
        output_ids = req.output_ids
        if missing > 0:
            req.output_ids = [*output_ids, *([0] * missing)]
        try:
            release_kv_cache(req, scheduler.tree_cache, is_insert=False)
        except Exception:  # never let the clean-up take the loop down
            logger.exception("freeing the KV cache of failed request %s", req.rid)
        finally:
            req.output_ids = output_ids
    req.finished_output = True
    scheduler.send_to_tokenizer.send_output(
        AbortReq(rid=req.rid, finished_reason=_abort_json(message), abort_message=message), req
    )


def fail_batch(scheduler, batch, exc: BaseException, where: str) -> None:
    """Every request of `batch` fails: the scheduler cannot tell which one made it raise."""
    reqs = list(getattr(batch, "reqs", None) or [])
    logger.error(
        "%s raised for %d request(s) %s; failing them, the server keeps serving:\n%s",
        where, len(reqs), [r.rid for r in reqs][:16], traceback.format_exc(),
    )
    message = public_message(exc, where)
    for req in reqs:
        fail_request(scheduler, req, message)
    if getattr(scheduler, "chunked_req", None) in reqs:
        scheduler.chunked_req = None  # released above; must not be cached again as a chunk


def run_batch(scheduler, batch):
    """`scheduler.run_batch(batch)`, or None once the batch's requests were failed."""
    if _INJECT is not None:
        _install_fault_injection(scheduler)
    try:
        return scheduler.run_batch(batch)
    except Exception as exc:
        fail_batch(scheduler, batch, exc, "running the model")
        return None


def process_batch_result(scheduler, batch, result) -> None:
    try:
        scheduler.process_batch_result(batch, result)
    except Exception as exc:
        fail_batch(scheduler, batch, exc, "processing the model output")


def launch_sample(scheduler, batch, result) -> None:
    """Delayed sampling (overlap + grammar); on failure, drop the queued result too."""
    try:
        scheduler.launch_batch_sample_if_needed(result)
    except Exception as exc:
        queue = scheduler.result_queue
        for i in range(len(queue) - 1, -1, -1):
            if queue[i][1] is result:
                del queue[i]
                break
        fail_batch(scheduler, batch, exc, "sampling")


def dispatch_input(scheduler, recv_req):
    """One incoming request through the scheduler's dispatcher; a raise fails only it."""
    try:
        return scheduler._request_dispatcher(recv_req)
    except Exception as exc:
        from sglang.srt.managers.io_struct import AbortReq

        rid = getattr(recv_req, "rid", None)
        logger.error("handling %s (rid=%s) raised; rejecting it, the server keeps serving:\n%s",
                     type(recv_req).__name__, rid, traceback.format_exc())
        if isinstance(rid, str) and rid:
            message = public_message(exc, "accepting the request")
            scheduler.send_to_tokenizer.send_output(
                AbortReq(rid=rid, finished_reason=_abort_json(message), abort_message=message),
                recv_req,
            )
        return None


# ---- fault injection (tests only) ------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FaultInjection:
    """Test-only faults inside the model's forward pass, from SGLANG_RDNA4_FAULT_INJECT:
    comma-separated items, `<token id>` (a prefill containing that token raises) and
    `decode-rid=<prefix>` (a decode step with a request whose rid starts so raises)."""

    prefill_token: int | None = None
    decode_rid_prefix: str | None = None

    @classmethod
    def from_env(cls) -> FaultInjection | None:
        import os

        raw = os.environ.get("SGLANG_RDNA4_FAULT_INJECT", "").strip()
        if not raw:
            return None
        token, prefix = None, None
        for item in (x.strip() for x in raw.split(",") if x.strip()):
            if item.startswith("decode-rid="):
                prefix = item.removeprefix("decode-rid=")
            elif item.lstrip("-").isdigit():
                token = int(item)
            else:
                raise ValueError(
                    f"SGLANG_RDNA4_FAULT_INJECT={raw!r}: items are a token id or "
                    "decode-rid=<prefix> (fault injection, for tests only)")
        return cls(token, prefix)

    def check(self, input_ids, forward_batch) -> None:
        mode = forward_batch.forward_mode
        if self.prefill_token is not None and mode.is_extend() \
                and bool((input_ids == self.prefill_token).any()):
            raise InjectedFault(f"injected fault: prefill contains token id {self.prefill_token}")
        if self.decode_rid_prefix is not None and mode.is_decode() and any(
                rid.startswith(self.decode_rid_prefix) for rid in forward_batch.rids or ()):
            raise InjectedFault(f"injected fault: decode step of a request {self.decode_rid_prefix}*")


_INJECT = FaultInjection.from_env()


class InjectedFault(RuntimeError):
    """Raised by the test-only fault injection inside the model's forward pass."""


def _install_fault_injection(scheduler) -> None:
    if getattr(scheduler, "_rdna4_fault_injection", False):
        return
    scheduler._rdna4_fault_injection = True
    model = scheduler.tp_worker.model_runner.model
    inner = model.forward
    inject = _INJECT
    logger.warning("FAULT INJECTION ON (tests only): %s raises inside the model's forward", inject)

    def forward(input_ids, positions, forward_batch, *args, **kwargs):
        inject.check(input_ids, forward_batch)
        return inner(input_ids, positions, forward_batch, *args, **kwargs)

    model.forward = forward


# ---- detokenizer -----------------------------------------------------------------------

def _slice(recv_obj, i: int, bs: int):
    """Request `i` of a batch output as a batch of one (every per-request list sliced)."""
    changes = {}
    for field in dataclasses.fields(recv_obj):
        value = getattr(recv_obj, field.name)
        if isinstance(value, list) and len(value) == bs:
            changes[field.name] = value[i : i + 1]
    return dataclasses.replace(recv_obj, **changes)


def detokenize(manager, recv_obj):
    """The detokenizer's dispatch; if decoding a batch raises, decode request by request and
    fail (500) only the requests that still raise."""
    from sglang.srt.managers.io_struct import AbortReq, BatchTokenIDOutput

    if not isinstance(recv_obj, BatchTokenIDOutput) or not recv_obj.rids:
        return manager._request_dispatcher(recv_obj)
    status = manager.decode_status
    before = [len(status[r].decode_ids) if r in status else None for r in recv_obj.rids]
    try:
        return manager._request_dispatcher(recv_obj)
    except Exception:
        logger.error("detokenizing a batch of %d raised; retrying request by request:\n%s",
                     len(recv_obj.rids), traceback.format_exc())
    failed: OrderedDict = manager.__dict__.setdefault("_rdna4_failed_rids", OrderedDict())
    for rid, n in zip(recv_obj.rids, before):  # undo the batch's partial state update
        if n is None:
            status.pop(rid, None)
        elif rid in status:
            del status[rid].decode_ids[n:]
    bs = len(recv_obj.rids)
    for i, rid in enumerate(recv_obj.rids):
        one = _slice(recv_obj, i, bs)
        try:
            output = manager._request_dispatcher(one)
        except Exception as exc:
            status.pop(rid, None)
            logger.error("detokenizing request %s raised; failing it:\n%s", rid,
                         traceback.format_exc())
            if rid in failed:
                continue
            failed[rid] = True
            if len(failed) > _FAILED_RIDS_KEPT:
                failed.popitem(last=False)
            message = public_message(exc, "detokenizing the output")
            output = AbortReq(rid=rid, finished_reason=_abort_json(message),
                              abort_message=message)
            output.http_worker_ipc = one.http_worker_ipcs[0] if one.http_worker_ipcs else None
        if output is not None:
            manager.send_to_tokenizer.send_pyobj(output)
    return None

"""A request failed by fault isolation stays finished in the TokenizerManager when its abort
(sent straight from the scheduler) overtakes an earlier output still in the detokenizer: the
late output must not reopen it, or its stream waits forever."""

from __future__ import annotations

import asyncio
import dataclasses
from types import SimpleNamespace

from sglang.srt.managers.io_struct import AbortReq, BatchStrOutput, GenerateReqInput
from sglang.srt.managers.tokenizer_manager import ReqState, TokenizerManager
from sglang.srt.observability.req_time_stats import APIServerReqTimeStats
from sglang.srt.rdna4.serving import fault_isolation

RID = "long-1"


def _manager() -> tuple[TokenizerManager, ReqState]:
    mgr = TokenizerManager.__new__(TokenizerManager)
    mgr.server_args = SimpleNamespace(weight_version="default", skip_tokenizer_init=False,
                                      incremental_streaming_output=False,
                                      speculative_algorithm=None, enable_lora=False, dp_size=1)
    mgr.enable_metrics = False
    mgr.dump_requests_folder = mgr.crash_dump_folder = None
    obj = GenerateReqInput(text="The quick", stream=True, rid=RID)
    state = ReqState([], False, asyncio.Event(), obj, APIServerReqTimeStats())
    mgr.rid_to_state = {RID: state}
    return mgr, state


def _late_output(text: str) -> BatchStrOutput:
    given = {"rids": [RID], "http_worker_ipcs": [None], "finished_reasons": [None],
             "output_strs": [text], "output_ids": [[7]], "prompt_tokens": [3],
             "completion_tokens": [1], "reasoning_tokens": [0], "cached_tokens": [0],
             "retraction_counts": [0]}
    for field in dataclasses.fields(BatchStrOutput):
        if field.name not in given and field.default is dataclasses.MISSING \
                and field.default_factory is dataclasses.MISSING:
            given[field.name] = None
    return BatchStrOutput(**given)


def test_output_after_abort_does_not_reopen_the_request():
    mgr, state = _manager()
    message = fault_isolation.public_message(RuntimeError("boom"), "running the model")
    mgr._handle_abort_req(AbortReq(rid=RID, finished_reason=fault_isolation._abort_json(message),
                                   abort_message=message))
    mgr._handle_batch_output(_late_output("x"))
    assert state.finished
    assert [o["meta_info"]["finish_reason"]["status_code"] for o in state.out_list] == [500]
    assert state.event.is_set()


def test_output_before_abort_is_kept():
    mgr, state = _manager()
    mgr._handle_batch_output(_late_output("x"))
    assert not state.finished and state.out_list[-1]["text"] == "x"

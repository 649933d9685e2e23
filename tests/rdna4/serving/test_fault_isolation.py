"""Detokenizer fault isolation on the real DetokenizerManager decode path: a request whose
ids cannot be decoded fails alone (a 500 abort); the rest of its batch decodes normally."""

from __future__ import annotations

import dataclasses

import pytest

from sglang.srt.managers.detokenizer_manager import DetokenizerManager, LimitedCapacityDict
from sglang.srt.managers.io_struct import AbortReq, BatchStrOutput, BatchTokenIDOutput
from sglang.srt.rdna4.devtools.tiny_models import build_tokenizer
from sglang.srt.rdna4.serving import fault_isolation


class _Sink:
    def __init__(self):
        self.sent = []

    def send_pyobj(self, obj):
        self.sent.append(obj)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return build_tokenizer(tmp_path_factory.mktemp("tok"))


@pytest.fixture
def manager(tokenizer):
    mgr = DetokenizerManager.__new__(DetokenizerManager)
    mgr.tokenizer = tokenizer
    mgr.decode_status = LimitedCapacityDict(capacity=64)
    mgr.disable_tokenizer_batch_decode = False
    mgr.is_tool_call_parser_gpt_oss = False
    mgr.send_to_tokenizer = _Sink()
    mgr.init_request_dispatcher()
    return mgr


def batch(rids: list[str], ids: list[list[int]], finished=None) -> BatchTokenIDOutput:
    bs = len(rids)
    given = {
        "rids": rids, "http_worker_ipcs": [None] * bs,
        "finished_reasons": finished or [None] * bs, "decoded_texts": [""] * bs,
        "decode_ids": ids, "read_offsets": [0] * bs, "output_ids": ids,
        "skip_special_tokens": [True] * bs, "spaces_between_special_tokens": [True] * bs,
        "no_stop_trim": [False] * bs,
    }
    for field in dataclasses.fields(BatchTokenIDOutput):
        if field.name not in given and field.default is dataclasses.MISSING \
                and field.default_factory is dataclasses.MISSING:
            given[field.name] = [None] * bs
    return BatchTokenIDOutput(**given)


def test_good_batch_passes_through(manager, tokenizer):
    ids = tokenizer("hello")["input_ids"]
    out = fault_isolation.detokenize(manager, batch(["a"], [list(ids)], [{"type": "length"}]))
    assert isinstance(out, BatchStrOutput) and out.output_strs == ["hello"]


def test_undecodable_request_fails_alone(manager, tokenizer):
    good = tokenizer("fox")["input_ids"]
    out = fault_isolation.detokenize(
        manager, batch(["good", "bad"], [list(good), [5, -1]], [{"type": "length"}] * 2))
    assert out is None  # sent request by request instead
    sent = manager.send_to_tokenizer.sent
    assert [type(x) for x in sent] == [BatchStrOutput, AbortReq]
    assert sent[0].rids == ["good"] and sent[0].output_strs == ["fox"]
    assert sent[1].rid == "bad" and sent[1].finished_reason["status_code"] == 500
    assert "OverflowError" in sent[1].finished_reason["message"]
    assert "bad" not in manager.decode_status


def test_retry_does_not_duplicate_streamed_tokens(manager, tokenizer):
    """The failed batch decode already extended the good request's ids; the retry must not
    extend them twice."""
    first = tokenizer("ab")["input_ids"]
    fault_isolation.detokenize(manager, batch(["s"], [list(first)]))
    more = tokenizer("cd", add_special_tokens=False)["input_ids"]
    fault_isolation.detokenize(manager, batch(["s", "bad"], [list(more), [-7]]))
    assert manager.decode_status["s"].decode_ids == [*first, *more]

"""Request validation (issue #15): limits from the environment, token ids, n, logprobs,
model names, clean validation messages, and public messages for internal failures."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sglang.srt.entrypoints.openai.protocol import ChatCompletionRequest, CompletionRequest
from sglang.srt.managers.io_struct import GenerateReqInput
from sglang.srt.rdna4.serving.fault_isolation import public_message
from sglang.srt.rdna4.serving.http_guards import describe_validation_errors
from sglang.srt.rdna4.serving.limits import MIB, RequestLimits
from sglang.srt.rdna4.serving.messages import clean_message
from sglang.srt.rdna4.serving.validation import (
    RequestError,
    check_token_ids,
    validate_generate_input,
    validate_openai_request,
)

LIMITS = RequestLimits()
SERVER = SimpleNamespace(model_path="/models/tiny-llama", served_model_name="tiny")


def test_defaults_follow_openai():
    assert (LIMITS.max_completion_logprobs, LIMITS.max_top_logprobs) == (5, 20)
    assert LIMITS.max_n == 128 and LIMITS.max_body_bytes == 32 * MIB and LIMITS.strict_model_name


def test_limits_from_env(monkeypatch):
    monkeypatch.setenv("SGLANG_RDNA4_MAX_N", "4")
    monkeypatch.setenv("SGLANG_RDNA4_MAX_LOGPROBS", "10")
    monkeypatch.setenv("SGLANG_RDNA4_MAX_REQUEST_BYTES", "2048")
    monkeypatch.setenv("SGLANG_RDNA4_STRICT_MODEL_NAME", "0")
    limits = RequestLimits.from_env()
    assert (limits.max_n, limits.max_completion_logprobs, limits.max_body_bytes) == (4, 10, 2048)
    assert not limits.strict_model_name


@pytest.mark.parametrize("name, value", [("SGLANG_RDNA4_MAX_N", "0"), ("SGLANG_RDNA4_MAX_N", "lots"),
                                         ("SGLANG_RDNA4_STRICT_MODEL_NAME", "maybe")])
def test_bad_env_names_the_variable(monkeypatch, name, value):
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name):
        RequestLimits.from_env()


@pytest.mark.parametrize("ids, bad", [([-1, 5], "-1"), ([10**9], "1000000000"), ([5, 102], "102"),
                                      ([[1, 2], [3, 128]], "128"), ([1, 2.5], "2.5"), ([True], "True")])
def test_token_ids_outside_vocab_are_rejected(ids, bad):
    with pytest.raises(RequestError, match=rf"token id {bad} .*\[0, 102\)") as err:
        check_token_ids(ids, 102, "prompt")
    assert err.value.status_code == 400 and err.value.param == "prompt"


def test_token_ids_inside_vocab_pass():
    check_token_ids([0, 1, 101], 102, "prompt")
    check_token_ids([[0], [101, 5]], 102, "prompt")


def test_long_prompt_is_not_echoed_back():
    with pytest.raises(RequestError) as err:
        check_token_ids([7] * 10_000 + [-3], 102, "input_ids")
    assert "position 10000" in err.value.message and len(err.value.message) < 300


@pytest.mark.parametrize("kwargs, field", [
    ({"input_ids": [3, -1]}, "input_ids"),
    ({"input_ids": [3], "sampling_params": {"n": 0}}, "n"),
    ({"input_ids": [3], "sampling_params": {"n": 129}}, "n"),
    ({"input_ids": [3], "return_logprob": True, "top_logprobs_num": 103}, "top_logprobs_num"),
    ({"input_ids": [3], "return_logprob": True, "token_ids_logprob": [1, 500]}, "token_ids_logprob"),
    ({"text": ["a", "b"], "sampling_params": [{"n": 1}, {"n": -2}]}, "n"),
])
def test_native_generate_input(kwargs, field):
    with pytest.raises(RequestError) as err:
        validate_generate_input(GenerateReqInput(**kwargs), 102, LIMITS)
    assert err.value.param == field


def test_native_generate_input_valid():
    validate_generate_input(GenerateReqInput(input_ids=[1, 101], top_logprobs_num=102,
                                             sampling_params={"n": 128}), 102, LIMITS)


@pytest.mark.parametrize("model", ["tiny", "/models/tiny-llama", "tiny:my-adapter", "default"])
def test_served_model_names_pass(model):
    validate_openai_request(CompletionRequest(model=model, prompt=[1, 2]), SERVER, 102, LIMITS)


def test_unknown_model_is_404():
    with pytest.raises(RequestError, match="'gpt-4' does not exist.*tiny") as err:
        validate_openai_request(CompletionRequest(model="gpt-4", prompt="x"), SERVER, limits=LIMITS)
    assert (err.value.status_code, err.value.param, err.value.err_type) == (404, "model", "NotFoundError")


def test_unknown_model_allowed_when_not_strict():
    validate_openai_request(CompletionRequest(model="gpt-4", prompt="x"), SERVER,
                            limits=RequestLimits(strict_model_name=False))


@pytest.mark.parametrize("request_, field", [
    (CompletionRequest(model="tiny", prompt="x", n=0), "n"),
    (CompletionRequest(model="tiny", prompt=[5, -1]), "prompt"),
    (CompletionRequest(model="tiny", prompt=[[5], [128]]), "prompt"),
    (CompletionRequest(model="tiny", prompt="x", n=1000), "n"),
    (CompletionRequest(model="tiny", prompt="x", logprobs=6), "logprobs"),
    (CompletionRequest(model="tiny", prompt="x", logprobs=-1), "logprobs"),
    (ChatCompletionRequest(model="tiny", messages=[{"role": "user", "content": "x"}], logprobs=True,
                           top_logprobs=21), "top_logprobs"),
])
def test_openai_limits(request_, field):
    with pytest.raises(RequestError, match=field) as err:
        validate_openai_request(request_, SERVER, 102, LIMITS)
    assert err.value.status_code == 400 and err.value.param == field


def test_openai_limits_at_the_edge_pass():
    validate_openai_request(CompletionRequest(model="tiny", prompt="x", n=128, logprobs=5), SERVER,
                            limits=LIMITS)
    validate_openai_request(ChatCompletionRequest(model="tiny", messages=[{"role": "user", "content": "x"}],
                                                  logprobs=True, top_logprobs=20), SERVER, limits=LIMITS)


def test_validation_messages_name_the_field_without_internals():
    errors = [
        {"type": "value_error", "loc": ("body", "messages", 0, "ChatCompletionMessageGenericParam", "role"),
         "msg": "Value error, 'role' must be one of 'system', 'user'", "input": "usr"},
        {"type": "literal_error", "loc": ("body", "messages", 0, "ChatCompletionMessageUserParam", "role"),
         "msg": "Input should be 'user'", "input": "usr"},
        {"type": "int_parsing", "loc": ("body", "max_tokens"), "msg": "Input should be a valid integer",
         "input": "many"},
    ]
    message, param = describe_validation_errors(errors)
    assert message == ("messages.0.role: 'role' must be one of 'system', 'user' (got 'usr'); "
                       "max_tokens: Input should be a valid integer (got 'many')")
    assert param == "messages.0.role"


def test_public_message_strips_source_paths():
    exc = IndexError('index out of range in File "/work/main/python/sglang/srt/x.py", line 12')
    text = public_message(exc, "running the model")
    assert "IndexError" in text and "/work" not in text and ".py" not in text


def test_union_error_reports_the_member_the_client_meant():
    errors = [
        {"type": "value_error", "loc": ("body", "messages", 0, "ChatCompletionMessageGenericParam", "role"),
         "msg": "Value error, 'role' must be one of ...", "input": "user"},
        {"type": "string_type", "loc": ("body", "messages", 0, "ChatCompletionMessageUserParam", "content", "str"),
         "msg": "Input should be a valid string", "input": 5},
        {"type": "list_type",
         "loc": ("body", "messages", 0, "ChatCompletionMessageUserParam", "content", "list[...]"),
         "msg": "Input should be a valid list", "input": 5},
    ]
    assert describe_validation_errors(errors) == (
        "messages.0.content: Input should be a valid string (got 5)", "messages.0.content")


def test_invalid_json_message():
    errors = [{"type": "json_invalid", "loc": ("body", 16), "msg": "JSON decode error", "input": {},
               "ctx": {"error": "Expecting value"}}]
    assert describe_validation_errors(errors) == ("request body is not valid JSON (Expecting value)", None)


@pytest.mark.parametrize("raw, clean", [
    ("Failed to compile regex grammar: [16:19:26] /project/cpp/regex_converter.cc:75: Regex parsing "
     "error at position 5.\n", "Failed to compile regex grammar: Regex parsing error at position 5."),
    ('max_tokens: bad\n  File "/srv/sglang/http_server.py", line 1380, in openai_v1_completions',
     "max_tokens: bad"),
    ("no internals here", "no internals here"),
])
def test_clean_message(raw, clean):
    assert clean_message(raw) == clean

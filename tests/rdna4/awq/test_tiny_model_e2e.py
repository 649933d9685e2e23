"""End to end on CPU: a tiny Llama whose linear layers are RTN-packed into the AWQ layout and
run through our dispatch (Triton GEMV under the interpreter at decode) generates the same
greedy tokens as the same model with the dequantized weights in plain nn.Linear."""

from __future__ import annotations

import pytest
import torch
from sglang.srt.rdna4.awq import dispatch
from sglang.srt.rdna4.awq.packer import quantize_rtn
from sglang.srt.rdna4.awq.reference import awq_dequantize_ref

transformers = pytest.importorskip("transformers")


class AWQLinear(torch.nn.Module):
    def __init__(self, linear: torch.nn.Linear, group_size: int):
        super().__init__()
        p = quantize_rtn(linear.weight.detach().t(), group_size, torch.float16)
        qw, s, qz = dispatch.prepare_awq_weights(p.qweight, p.scales, p.qzeros, torch.float32)
        self.register_buffer("qweight", qw)
        self.register_buffer("scales", s)
        self.register_buffer("qzeros", qz)
        self.bias = linear.bias

    def forward(self, x):
        return dispatch.awq_linear(x, self.qweight, self.scales, self.qzeros, self.bias)

    def dequantized_linear(self) -> torch.nn.Linear:
        w = awq_dequantize_ref(self.qweight, self.scales, self.qzeros).t().to(torch.float32)
        lin = torch.nn.Linear(w.shape[1], w.shape[0], bias=self.bias is not None)
        with torch.no_grad():
            lin.weight.copy_(w)
            if self.bias is not None:
                lin.bias.copy_(self.bias)
        return lin


def _swap_linears(model, make):
    for layer in model.model.layers:
        for parent in (layer.self_attn, layer.mlp):
            for name, child in list(parent.named_children()):
                if isinstance(child, (torch.nn.Linear, AWQLinear)):
                    setattr(parent, name, make(child))


def test_tiny_llama_awq_greedy_tokens_match_dequantized(monkeypatch):
    paths = []
    real_call_for = dispatch.AWQPlan.call_for
    monkeypatch.setattr(dispatch.AWQPlan, "call_for",
                        lambda self, m: paths.append(self.path_for(m)) or real_call_for(self, m))
    cfg = transformers.LlamaConfig(
        vocab_size=96, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg).eval().to(torch.float32)
    _swap_linears(model, lambda lin: AWQLinear(lin, 32))
    prompt = torch.tensor([[1, 17, 42, 5, 63, 8]])
    with torch.no_grad():
        out_awq = model.generate(prompt, max_new_tokens=6, do_sample=False)
        logits_awq = model(out_awq).logits
    _swap_linears(model, lambda m: m.dequantized_linear())
    with torch.no_grad():
        out_ref = model.generate(prompt, max_new_tokens=6, do_sample=False)
        logits_ref = model(out_awq).logits
    assert "gemv" in paths, f"decode never reached the Triton GEMV: {set(paths)}"
    assert torch.equal(out_awq, out_ref)
    rel = (logits_awq - logits_ref).norm() / logits_ref.norm()
    assert rel < 1e-4

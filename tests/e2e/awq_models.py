"""Tiny int4 checkpoints for the end-to-end tests: a float model built by the harness is
RTN-quantized into the exact AWQ or GPTQ checkpoint layout, and its *dequantized* twin
(the same checkpoint with every quantized weight replaced by dequant(quant(W)) in float32)
is written beside it for HF transformers to serve as the reference.

Quantized: every linear `.weight` inside the decoder layers (experts included) except the
ones SGLang builds unquantized (the MoE routers `mlp.gate`, `shared_expert_gate`, Gemma 4's
`router.proj`) and DeltaNet's `in_proj_a` / `in_proj_b` (a few columns each, not a multiple
of 8; real Qwen3.5 int4 checkpoints keep them in 16 bits too).

Gemma 4 stores its experts fused in 3-D, `experts.gate_up_proj` [E, 2I, H] (gate rows first)
and `experts.down_proj` [E, H, I], each expert [out, in] like nn.Linear. Int4 checkpoints
store them per expert, so these are split into `experts.{e}.{gate,up,down}_proj` linears and
quantized one by one; the dequantized twin re-fuses them into HF's 3-D layout.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from sglang.srt.rdna4.awq.gptq_packer import gptq_dequantize_ref, quantize_gptq_rtn
from sglang.srt.rdna4.awq.packer import quantize_rtn
from sglang.srt.rdna4.awq.reference import awq_dequantize_ref

UNQUANTIZED = ("in_proj_a", "in_proj_b")
_ROUTERS = re.compile(r"\.mlp\.gate\.weight$|shared_expert_gate\.weight$|\.router\.proj\.weight$")
_FUSED_EXPERTS = re.compile(r"\.experts\.(gate_up_proj|down_proj)$")


def is_quantized(name: str, tensor: torch.Tensor) -> bool:
    return (
        ".layers." in name
        and name.endswith(".weight")
        and tensor.dim() == 2
        and not _ROUTERS.search(name)
        and not any(f".{m}." in name for m in UNQUANTIZED)
        and "norm" not in name
    )


def is_fused_experts(name: str, tensor: torch.Tensor) -> bool:
    return ".layers." in name and tensor.dim() == 3 and _FUSED_EXPERTS.search(name) is not None


def split_fused_experts(name: str, tensor: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-expert [out, in] linears, named as int4 checkpoints name them (`.weight` suffix)."""
    prefix, kind = name.rsplit(".", 1)
    out: dict[str, torch.Tensor] = {}
    for e, w in enumerate(tensor):
        if kind == "gate_up_proj":
            gate, up = w.chunk(2, dim=0)
            out[f"{prefix}.{e}.gate_proj.weight"] = gate.contiguous()
            out[f"{prefix}.{e}.up_proj.weight"] = up.contiguous()
        else:
            out[f"{prefix}.{e}.down_proj.weight"] = w.contiguous()
    return out


def _fuse_experts(name: str, num_experts: int, deq: dict[str, torch.Tensor]) -> torch.Tensor:
    prefix, kind = name.rsplit(".", 1)
    if kind == "gate_up_proj":
        per_expert = [torch.cat([deq[f"{prefix}.{e}.gate_proj.weight"], deq[f"{prefix}.{e}.up_proj.weight"]])
                      for e in range(num_experts)]
    else:
        per_expert = [deq[f"{prefix}.{e}.down_proj.weight"] for e in range(num_experts)]
    return torch.stack(per_expert)


def _awq(w: torch.Tensor, group_size: int, scale_dtype: torch.dtype):
    # Scales rounded to scale_dtype first, stored as float16 (as AutoAWQ writes them): with
    # scale_dtype=bfloat16 the kernels see exactly these values after the load-time cast.
    p = quantize_rtn(w.t(), group_size, scale_dtype)
    scales = p.scales.to(torch.float16)
    tensors = {"qweight": p.qweight, "qzeros": p.qzeros, "scales": scales}
    return tensors, awq_dequantize_ref(p.qweight, scales, p.qzeros).t()


def _gptq(w: torch.Tensor, group_size: int, scale_dtype: torch.dtype):
    p = quantize_gptq_rtn(w.t(), group_size, sym=True, scale_dtype=scale_dtype)
    scales = p.scales.to(torch.float16)
    tensors = {"qweight": p.qweight, "qzeros": p.qzeros, "scales": scales, "g_idx": p.g_idx}
    return tensors, gptq_dequantize_ref(p.qweight, p.qzeros, scales, p.g_idx).t()


def quantization_config(scheme: str, group_size: int) -> dict:
    if scheme == "awq":
        return {"quant_method": "awq", "bits": 4, "group_size": group_size, "zero_point": True,
                "version": "gemm", "modules_to_not_convert": list(UNQUANTIZED)}
    if scheme == "gptq":
        return {"quant_method": "gptq", "bits": 4, "group_size": group_size, "desc_act": False,
                "sym": True, "lm_head": False, "checkpoint_format": "gptq",
                "dynamic": {f"-:.*{m}.*": {} for m in UNQUANTIZED}}
    raise ValueError(f"scheme {scheme!r}: use awq or gptq")


def _load_single_file(float_dir: Path) -> tuple[str, dict[str, torch.Tensor]]:
    """The float model's one safetensors file: (its name, its tensors)."""
    files = sorted(float_dir.glob("*.safetensors"))
    if len(files) != 1:
        raise ValueError(f"{float_dir}: expected one safetensors file, found {len(files)}")
    return files[0].name, load_file(str(files[0]))


def _write_pair(float_dir: Path, weights_name: str, quant_dir: Path, quant: dict,
                deq_dir: Path, deq: dict, quant_config: dict) -> None:
    """Write the int4 checkpoint and its dequantized twin beside copies of the float model's
    other files; only the int4 one gets `quantization_config`."""
    for out, tensors in ((quant_dir, quant), (deq_dir, deq)):
        out.mkdir(parents=True, exist_ok=True)
        for f in float_dir.iterdir():
            if f.suffix != ".safetensors" and f.name != "server.log" and f.is_file():
                shutil.copy(f, out / f.name)
        save_file(tensors, str(out / weights_name), metadata={"format": "pt"})
    config = json.loads((float_dir / "config.json").read_text())
    config["quantization_config"] = quant_config
    (quant_dir / "config.json").write_text(json.dumps(config, indent=2))


def quantize_checkpoint(
    float_dir: Path, quant_dir: Path, deq_dir: Path, scheme: str, group_size: int = 32,
    scale_dtype: torch.dtype = torch.float16,
) -> int:
    """Write the int4 checkpoint to quant_dir and its dequantized float32 twin to deq_dir.
    Returns how many weights were quantized."""
    quantize = {"awq": _awq, "gptq": _gptq}[scheme]
    float_dir, quant_dir, deq_dir = Path(float_dir), Path(quant_dir), Path(deq_dir)
    weights_name, state = _load_single_file(float_dir)
    quant: dict[str, torch.Tensor] = {}
    deq: dict[str, torch.Tensor] = {}
    count = 0
    for name, tensor in state.items():
        fused = is_fused_experts(name, tensor)
        linears = split_fused_experts(name, tensor) if fused else {name: tensor}
        deq_linears: dict[str, torch.Tensor] = {}
        for lin_name, lin in linears.items():
            if is_quantized(lin_name, lin):
                tensors, w = quantize(lin.to(torch.float32), group_size, scale_dtype)
                base = lin_name[: -len(".weight")]
                quant.update({f"{base}.{k}": v.contiguous() for k, v in tensors.items()})
                deq_linears[lin_name] = w.to(torch.float32).contiguous()
                count += 1
            else:
                quant[lin_name] = lin
                deq_linears[lin_name] = lin
        deq.update({name: _fuse_experts(name, tensor.shape[0], deq_linears)} if fused else deq_linears)
    _write_pair(float_dir, weights_name, quant_dir, quant, deq_dir, deq,
                quantization_config(scheme, group_size))
    return count


def teacher_forced_logprobs(model_dir: Path, input_ids: list[int], output_ids: list[int]) -> torch.Tensor:
    """HF float32 log-softmax [len(output_ids), vocab] at each generated position."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.tensor([input_ids + output_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0].to(torch.float64)
    start = len(input_ids) - 1
    return torch.log_softmax(logits[start : start + len(output_ids)], dim=-1)


# Qwen3-Next / Qwen3-Coder-Next int4 checkpoints (GPTQ and AWQ alike) quantize the routed
# experts only: DeltaNet (`linear_attn`), full attention (`self_attn`), the shared expert and
# the routers stay in 16 bits.
EXPERTS_ONLY_UNQUANTIZED = ("linear_attn", "self_attn", "shared_expert")
_ROUTED_EXPERT = re.compile(r"\.layers\.\d+\.mlp\.experts\.\d+\.(gate|up|down)_proj\.weight$")


def experts_only_quantization_config(scheme: str, group_size: int) -> dict:
    config = quantization_config(scheme, group_size)
    if scheme == "awq":
        config["modules_to_not_convert"] = list(EXPERTS_ONLY_UNQUANTIZED)
    else:
        config["dynamic"] = {f"-:.*{m}.*": {} for m in EXPERTS_ONLY_UNQUANTIZED}
    return config


def quantize_routed_experts(
    float_dir: Path, quant_dir: Path, deq_dir: Path, scheme: str, group_size: int = 32,
    scale_dtype: torch.dtype = torch.float16,
) -> int:
    """As quantize_checkpoint, for a checkpoint that stores its experts per expert (as HF
    saves Qwen3-Next), with only the routed experts quantized. Returns how many were."""
    quantize = {"awq": _awq, "gptq": _gptq}[scheme]
    float_dir, quant_dir, deq_dir = Path(float_dir), Path(quant_dir), Path(deq_dir)
    weights_name, state = _load_single_file(float_dir)
    if any(is_fused_experts(name, t) for name, t in state.items()):
        raise ValueError(f"{float_dir}: experts stored fused in 3-D; use quantize_checkpoint")
    quant: dict[str, torch.Tensor] = {}
    deq: dict[str, torch.Tensor] = {}
    count = 0
    for name, tensor in state.items():
        if _ROUTED_EXPERT.search(name):
            tensors, w = quantize(tensor.to(torch.float32), group_size, scale_dtype)
            base = name[: -len(".weight")]
            quant.update({f"{base}.{k}": v.contiguous() for k, v in tensors.items()})
            deq[name] = w.to(torch.float32).contiguous()
            count += 1
        else:
            quant[name] = deq[name] = tensor
    _write_pair(float_dir, weights_name, quant_dir, quant, deq_dir, deq,
                experts_only_quantization_config(scheme, group_size))
    return count

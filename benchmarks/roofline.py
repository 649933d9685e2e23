"""The weight-streaming roofline shared by the benchmarks: copy bandwidth measured on the
device, and the bytes one decode step must read.

Decode at small batch reads every active weight once per step, so the fastest possible
time per output token is (bytes streamed per step) / (bandwidth the device really reaches).
The bandwidth is a device-to-device copy timed in the same run as the benchmark, counted as
read + write bytes, so the roofline moves with clocks and card.

Units: GB = 1e9 bytes everywhere here. SGLang reports its weight memory in GiB
(`memory_usage.weight`, from `get_available_gpu_memory`): convert with `GIB`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

GIB = float(1 << 30)
GB = 1e9

# bytes per weight of an int4 AWQ/GPTQ layout with group size g: 4-bit weight, a 16-bit scale
# and a 4-bit zero point per group
def int4_bytes_per_weight(group_size: int) -> float:
    return 0.5 + (2 + 0.5) / group_size


def copy_bandwidth_gbs(nbytes: int = 1 << 30, repeats: int = 10, device: str = "cuda") -> float:
    """Median (read + write) GB/s of a device-to-device copy of `nbytes`; NaN off-GPU."""
    import torch

    if device != "cuda" or not torch.cuda.is_available():
        return float("nan")
    src = torch.empty(nbytes, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    times = []
    for i in range(repeats + 3):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        dst.copy_(src)
        end.record()
        torch.cuda.synchronize()
        if i >= 3:  # the first copies pay for page mapping and clock ramp-up
            times.append(start.elapsed_time(end) / 1e3)
    del src, dst
    torch.cuda.empty_cache()
    times.sort()
    return 2 * nbytes / times[len(times) // 2] / GB


@dataclass(frozen=True)
class DecodeBytes:
    """What one decode step at batch 1 reads from the weights, in GB."""

    weight_gb: float           # everything the engine loaded
    untied_embedding_gb: float  # the input table: one row per token, not streamed
    inactive_experts_gb: float  # routed experts a batch-1 step does not touch
    streamed_gb: float

    def as_dict(self) -> dict:
        return {k: round(v, 3) for k, v in asdict(self).items()}


def decode_bytes(cfg: dict, weight_gb: float, dtype_bytes: int,
                 expert_bytes_per_weight: float | None = None) -> DecodeBytes:
    """Bytes a batch-1 decode step streams for an HF text config, given the engine's weight GB.

    `expert_bytes_per_weight`: bytes per routed-expert weight (int4_bytes_per_weight(g) for an
    int4 checkpoint, `dtype_bytes` when unquantized; default `dtype_bytes`).
    """
    hidden, vocab = int(cfg["hidden_size"]), int(cfg["vocab_size"])
    embed = 0.0 if cfg.get("tie_word_embeddings") else vocab * hidden * dtype_bytes / GB
    experts = int(cfg.get("num_experts") or cfg.get("num_local_experts") or 0)
    inactive = 0.0
    if experts:
        top_k = int(cfg.get("num_experts_per_tok") or cfg.get("top_k_experts") or 0)
        if not top_k:
            raise ValueError("MoE config without num_experts_per_tok / top_k_experts")
        per_weight = expert_bytes_per_weight if expert_bytes_per_weight else dtype_bytes
        one_expert = 3 * hidden * int(cfg["moe_intermediate_size"]) * per_weight / GB
        inactive = int(cfg["num_hidden_layers"]) * (experts - top_k) * one_expert
    return DecodeBytes(weight_gb, embed, inactive, weight_gb - embed - inactive)


def roofline_ms(streamed_gb: float, bandwidth_gbs: float) -> float:
    """The weight-streaming bound on time per decode step, in ms."""
    return streamed_gb / bandwidth_gbs * 1e3

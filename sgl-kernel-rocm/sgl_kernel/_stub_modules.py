"""Tables of upstream symbols that sgl-kernel-rocm deliberately does not implement.

Each entry: symbol -> (feature that needs it, advice). The module that exports the symbol
builds a call-time stub from it with `sgl_kernel._unsupported.unsupported`.
"""

from __future__ import annotations

_SPEC = "speculative decoding (EAGLE / n-gram)"
_SPEC_ADVICE = "Speculative decoding is not supported by sgl-kernel-rocm; run without --speculative-algorithm."
_MLA = "MLA / DeepSeek-style attention with NVIDIA-only kernels"
_MLA_ADVICE = "Use --attention-backend triton (MLA models run through the Triton backend on ROCm)."
_CUTLASS_MOE = "CUTLASS fused MoE (NVIDIA sm90/sm100)"
_MOE_ADVICE = "Use --moe-runner-backend triton (the default on ROCm)."
_FP8 = "FP8/INT8/FP4 quantized GEMMs with NVIDIA CUTLASS kernels"
_QUANT_ADVICE = "This quantization method is not supported on RDNA4 by this package; use an AWQ, GPTQ (Triton path) or unquantized checkpoint."

TOP_LEVEL: dict[str, tuple[str, str]] = {
    "apply_shuffle_mul_sum": (_CUTLASS_MOE, _MOE_ADVICE),
    "es_fp8_blockwise_scaled_grouped_mm": (_CUTLASS_MOE, _MOE_ADVICE),
    "es_sm100_mxfp8_blockscaled_grouped_mm": (_CUTLASS_MOE, _MOE_ADVICE),
    "es_sm100_mxfp8_blockscaled_grouped_quant": (_CUTLASS_MOE, _MOE_ADVICE),
    "fp8_blockwise_scaled_grouped_mm": (_CUTLASS_MOE, _MOE_ADVICE),
    "prepare_moe_input": (_CUTLASS_MOE, _MOE_ADVICE),
    "shuffle_rows": (_CUTLASS_MOE, _MOE_ADVICE),
    "cutlass_w4a8_moe_mm": ("W4A8 CUTLASS MoE", _QUANT_ADVICE),
    "get_cutlass_w4a8_moe_mm_data": ("W4A8 CUTLASS MoE", _QUANT_ADVICE),
    "bmm_fp8": ("FP8 batched matmul in MLA models", _QUANT_ADVICE),
    "fp8_blockwise_scaled_mm": (_FP8, _QUANT_ADVICE),
    "fp8_scaled_mm": (_FP8, _QUANT_ADVICE),
    "int8_scaled_mm": (_FP8, _QUANT_ADVICE),
    "cutlass_scaled_fp4_mm": (_FP8, _QUANT_ADVICE),
    "scaled_fp4_quant": (_FP8, _QUANT_ADVICE),
    "sgl_per_token_group_quant_fp8": ("FP8 activation quantization (CUDA path)", _QUANT_ADVICE),
    "sgl_per_token_group_quant_int8": ("INT8 activation quantization (CUDA path)", _QUANT_ADVICE),
    "sgl_per_token_quant_fp8": ("FP8 activation quantization (CUDA path)", _QUANT_ADVICE),
    "qserve_w4a8_per_chn_gemm": ("QoQ (qserve) W4A8 quantization", _QUANT_ADVICE),
    "qserve_w4a8_per_group_gemm": ("QoQ (qserve) W4A8 quantization", _QUANT_ADVICE),
    "gptq_gemm": ("GPTQ exllama GEMM (CUDA path)", "On ROCm GPTQ runs through the Triton/marlin-free path; use an AWQ checkpoint if it fails."),
    "gptq_shuffle": ("GPTQ exllama GEMM (CUDA path)", "On ROCm GPTQ runs through the Triton/marlin-free path; use an AWQ checkpoint if it fails."),
    "concat_mla_absorb_q": (_MLA, _MLA_ADVICE),
    "concat_mla_k": (_MLA, _MLA_ADVICE),
    "cutlass_mla_decode": (_MLA, _MLA_ADVICE),
    "cutlass_mla_get_workspace_size": (_MLA, _MLA_ADVICE),
    "dsv3_fused_a_gemm": ("DeepSeek-V3 fused A GEMM (CUDA path)", _MLA_ADVICE),
    "dsv3_router_gemm": ("DeepSeek-V3 router GEMM (CUDA path)", _MLA_ADVICE),
    "merge_state_v2": ("FlashAttention-3 / XPU attention state merge", "Use --attention-backend triton."),
    "build_tree_kernel_efficient": (_SPEC, _SPEC_ADVICE),
    "segment_packbits": (_SPEC, _SPEC_ADVICE),
    "tree_speculative_sampling_target_only": (_SPEC, _SPEC_ADVICE),
    "verify_tree_greedy": (_SPEC, _SPEC_ADVICE),
    "fast_topk_v2": ("NSA sparse attention (DeepSeek-V3.2)", "NSA is not supported on RDNA4."),
    "fast_topk_transform_fused": ("NSA sparse attention (DeepSeek-V3.2)", "NSA is not supported on RDNA4."),
    "fast_topk_transform_ragged_fused": ("NSA sparse attention (DeepSeek-V3.2)", "NSA is not supported on RDNA4."),
    "moe_fused_gate": ("fused grouped-topk gate (CUDA path)", "On ROCm upstream uses its torch/Triton grouped top-k."),
    "fused_experts": ("Intel XPU fused experts", "Not used on ROCm/CPU."),
    "fused_qk_norm_rope": ("upstream jit_kernel benchmarks only", "Not used by the runtime."),
    "hadamard_transform": ("upstream jit_kernel benchmarks only", "Not used by the runtime."),
    "causal_conv1d_fwd": ("CUDA causal-conv1d (probed; the Triton kernel is used instead)", "Nothing to do: upstream falls back to Triton."),
    "causal_conv1d_update": ("CUDA causal-conv1d (probed; the Triton kernel is used instead)", "Nothing to do: upstream falls back to Triton."),
}

# Symbols upstream imports inside `try: ... except ImportError` to pick a fallback: they are
# left absent on purpose so that the fallback runs.
ABSENT_FOR_FALLBACK: dict[str, str] = {
    "kimi_k2_moe_fused_gate": "topk.py falls back to the generic biased grouped top-k",
    "sgl_per_token_group_quant_8bit": "fp8_kernel.py/int8_kernel.py fall back to the JIT/Triton quantizer",
    "sgl_kernel.allreduce": "custom all-reduce is disabled; NCCL/RCCL all-reduce is used",
}

SUBMODULES: dict[str, dict[str, tuple[str, str]]] = {
    "flash_attn": {
        "flash_attn_varlen_func": ("FlashAttention-3 backends (fa3, dual-chunk, NSA, XPU)", "Use --attention-backend triton."),
        "flash_attn_with_kvcache": ("FlashAttention-3 backends (fa3, dual-chunk, NSA, XPU)", "Use --attention-backend triton."),
    },
    "flash_mla": {
        "flash_mla_sparse_fwd": ("FlashMLA backend", _MLA_ADVICE),
        "flash_mla_with_kvcache": ("FlashMLA backend", _MLA_ADVICE),
        "get_mla_metadata": ("FlashMLA backend", _MLA_ADVICE),
    },
    "sparse_flash_attn": {
        "convert_vertical_slash_indexes": ("dual-chunk sparse attention", "Use --attention-backend triton."),
        "convert_vertical_slash_indexes_mergehead": ("dual-chunk sparse attention", "Use --attention-backend triton."),
        "sparse_attn_func": ("dual-chunk sparse attention", "Use --attention-backend triton."),
    },
    "speculative": {
        "reconstruct_indices_from_tree_mask": (_SPEC, _SPEC_ADVICE),
    },
    "quantization": {
        name: ("GGUF quantized models (CUDA kernels)", "GGUF is not supported on RDNA4 by this package; use an AWQ or unquantized checkpoint.")
        for name in ("ggml_dequantize", "ggml_moe_a8", "ggml_moe_a8_vec", "ggml_moe_get_block_size",
                     "ggml_mul_mat_a8", "ggml_mul_mat_vec_a8")
    },
    "elementwise": {
        "copy_to_gpu_no_ce": ("DeepGEMM MoE runner (NVIDIA)", _MOE_ADVICE),
    },
    "spatial": {
        "get_sm_available": ("PD multiplexing with green contexts (NVIDIA)", "Run without --enable-pdmux."),
        "create_greenctx_stream_by_value": ("PD multiplexing with green contexts (NVIDIA)", "Run without --enable-pdmux."),
    },
    "test_utils": {
        "assert_all_close_or_tiny_diff": ("upstream jit_kernel tests only", "Not used by the runtime."),
        "create_per_token_group_quant_test_data": ("upstream jit_kernel tests only", "Not used by the runtime."),
    },
}

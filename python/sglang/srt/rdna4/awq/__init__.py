"""AWQ int4 on RDNA4: Triton GEMV (decode) and fused GEMM, MoE experts, dispatch.

Modules: gemv.py (M = 1 and small M), gemm.py (small M, per-nibble tensor-core dots),
gemm_tc.py (M up to 64-128: each weight tile read once per program, one dot for all rows),
dequant.py (for dequant + matmul at large M), moe.py (fused int4 experts, per slot),
moe_tc.py (the same over per-expert token blocks), dispatch.py (the kernel plan per layer
shape: built and logged once at load, carried on the layer), reference.py (float64
references), packer.py (AWQ checkpoint layout: pack, unpack, RTN quantization),
gptq_packer.py (the same for the GPTQ layout), repack.py (load-time GPTQ / moe_wna16 ->
AWQ layout conversions), gptq_linear.py (GPTQ linear layers served by the AWQ dispatch),
config.py (block configs per platform), common.py (input checks, split-K epilogue).
None of these imports upstream SGLang. moe_method.py and wna16_moe_method.py are the
exception: they plug fused_awq_moe into upstream's FusedMoE and are imported lazily by
upstream's AWQ / GPTQ / moe_wna16 configs.
"""

"""AWQ int4 on RDNA4: Triton GEMV (decode) and fused GEMM, MoE experts, dispatch.

Modules: gemv.py (M = 1 and small M), gemm.py (M > 1, tensor cores), dequant.py (for
dequant + matmul at large M), moe.py (fused int4 experts), dispatch.py (which kernel runs
for which M and layer size, logged once per layer shape), reference.py (float64
references), packer.py (AWQ checkpoint layout: pack, unpack, RTN quantization),
config.py (block configs per platform), common.py (input checks, split-K epilogue).
None of these imports upstream SGLang. moe_method.py is the exception: it plugs
fused_awq_moe into upstream's FusedMoE and is imported lazily by upstream's AWQConfig.
"""

"""FP8 checkpoints on RDNA4: weight-only FP8 linear layers (activations stay in the model dtype).

Modules: ``dequant`` (per-tensor / per-channel / block-wise scale plans and the torch
dequantizer, also the float64 reference), ``gemm`` (Triton GEMM that reads FP8 weights and
applies the scales to FP32 partial sums), ``linear`` (the linear method upstream's
``Fp8Config`` hands out on RDNA4: path chosen and logged at load).
"""

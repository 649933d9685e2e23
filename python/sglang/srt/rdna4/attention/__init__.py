"""FP32-safe Triton attention for RDNA4: split-KV decode, extend, KV-index builders.

Modules: ``decode`` (split-KV decode + LSE merge), ``extend`` (paged prefix + causal
extend), ``kv_indices`` (graph-capturable KV index gather), ``window`` (sliding-window
metadata helpers), ``reference`` (float64 ground truth), ``backend_hooks`` (how the
upstream Triton backend dispatches here on RDNA4).
"""

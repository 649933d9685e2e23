"""sgl_kernel for SGLang on ROCm (RDNA4) and CPU, from the sgl-kernel-rocm distribution.

Implements, with upstream's names and signatures, the ops the SGLang 0.5.10 runtime calls
on its HIP and CPU paths: Triton kernels for GPU tensors, plain torch for CPU tensors (and
as the reference). Symbols upstream imports but never reaches on those paths import fine and
raise NotImplementedError naming the feature when called. See README.md for the inventory.
"""

from __future__ import annotations

from sgl_kernel import _backend
from sgl_kernel._stub_modules import TOP_LEVEL as _TOP_LEVEL
from sgl_kernel._unsupported import unsupported as _unsupported
from sgl_kernel.activation import (
    gelu_and_mul,
    gelu_quick,
    gelu_quick_and_mul,
    gelu_tanh_and_mul,
    silu_and_mul,
)
from sgl_kernel.awq import awq_dequantize
from sgl_kernel.kvcacheio import transfer_kv_all_layer, transfer_kv_per_layer
from sgl_kernel.misc import apply_token_bitmask_inplace_cuda, weak_ref_tensor
from sgl_kernel.moe import (
    moe_align_block_size,
    moe_sum,
    moe_sum_reduce,
    topk_sigmoid,
    topk_softmax,
)
from sgl_kernel.norm import (
    fused_add_rmsnorm,
    gemma_fused_add_rmsnorm,
    gemma_rmsnorm,
    rmsnorm,
)
from sgl_kernel.rotary import apply_rope_with_cos_sin_cache_inplace, rotary_embedding
from sgl_kernel.sampling import fast_topk, top_k_renorm_prob, top_p_renorm_prob
from sgl_kernel import mamba, scalar_type, kvcacheio  # noqa: F401  (submodules upstream imports)
from sgl_kernel import _torch_ops  # noqa: F401  (registers torch.ops.sgl_kernel.* CPU ops)
from sgl_kernel import spatial  # noqa: F401

__version__ = "0.1.0"

for _name, (_feature, _advice) in _TOP_LEVEL.items():
    globals()[_name] = _unsupported(_name, _feature, _advice)

_backend.announce()

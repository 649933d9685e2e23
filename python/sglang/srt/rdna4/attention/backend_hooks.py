"""How upstream's Triton attention backend reaches the RDNA4 kernels.

``layers/attention/triton_backend.py`` carries a few dispatch lines (see
.notes/upstream_edits.txt); all logic lives here. Decisions are made lazily, at first
use, so importing the backend never initialises a GPU context, and off RDNA4 (no
``SGLANG_RDNA4=1``, not gfx12) every path is upstream's.
"""

from __future__ import annotations

import functools
import logging

from sglang.srt.rdna4.platform import is_rdna4

logger = logging.getLogger(__name__)


def enabled() -> bool:
    return is_rdna4()


def kernels():
    """(decode_attention_fwd, extend_attention_fwd) of this package; logs the choice once."""
    from sglang.srt.rdna4.attention.decode import decode_attention_fwd
    from sglang.srt.rdna4.attention.extend import extend_attention_fwd

    _log_once()
    return decode_attention_fwd, extend_attention_fwd


def max_kv_splits(configured: int) -> int:
    """The backend's max_kv_splits: RDNA4 default 64 / env override; upstream's otherwise."""
    if not enabled():
        return configured
    from sglang.srt.rdna4.attention.decode import rdna4_max_kv_splits

    value = rdna4_max_kv_splits(configured)
    if value != configured:
        logger.info("RDNA4 Triton decode: max_kv_splits %d -> %d", configured, value)
    return value


def scratch_v_head_dim(pool, num_layers: int, first_layer_dim: int) -> int:
    """The value head dim the decode scratch (attn_logits) must hold: the largest of any layer.

    Upstream sizes it from layer 0 alone; in a model whose layer types have different head
    dims (Gemma 4: sliding 256, full 512) a wider layer's splits then overwrite each other
    once a sequence takes more than one KV split. Not RDNA4-specific, so applied everywhere.
    """
    dims = [first_layer_dim]
    for layer_id in range(num_layers):
        try:
            dims.append(pool.get_value_buffer(layer_id).shape[-1])
        except (KeyError, IndexError, AttributeError, AssertionError, TypeError, ValueError):
            continue  # layers without a KV buffer here (linear attention, other PP ranks)
    return max(dims)


class _LazyKvIndices:
    """Stands in for upstream's ``create_flashinfer_kv_indices_triton`` (``k[grid](...)``)."""

    def __init__(self, upstream):
        self._upstream = upstream

    def __getitem__(self, grid):
        if enabled():
            from sglang.srt.rdna4.attention.kv_indices import create_flashinfer_kv_indices_triton

            return create_flashinfer_kv_indices_triton[grid]
        return self._upstream[grid]

    def __getattr__(self, name):  # anything else (e.g. .fn, .run) is upstream's
        return getattr(self._upstream, name)


def kv_indices_kernel(upstream):
    return _LazyKvIndices(upstream)


def window_buffer(upstream_fn):
    """Wrap upstream's update_sliding_window_buffer[_cuda_graph]: ours on RDNA4."""
    from sglang.srt.rdna4.attention import window

    ours = getattr(window, upstream_fn.__name__)

    @functools.wraps(upstream_fn)
    def dispatch(*args, **kwargs):
        return (ours if enabled() else upstream_fn)(*args, **kwargs)

    return dispatch


@functools.lru_cache(maxsize=None)
def _log_once() -> None:
    from sglang.srt.rdna4.attention._common import pv_mode_name

    logger.info(
        "RDNA4 Triton attention: decode=sglang.srt.rdna4.attention.decode (split-KV, FP32 "
        "softmax/accumulate, PV mode %s), extend=sglang.srt.rdna4.attention.extend, "
        "kv_indices=sglang.srt.rdna4.attention.kv_indices, sliding-window metadata="
        "sglang.srt.rdna4.attention.window; deterministic-mode unified extend stays upstream's",
        pv_mode_name(),
    )

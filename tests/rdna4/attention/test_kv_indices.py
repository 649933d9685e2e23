"""KV-index gather (with/without start, with full->SWA translation) and the
sliding-window metadata helpers, vs torch references."""

from __future__ import annotations

import pytest
import torch

from sglang.srt.rdna4.attention.kv_indices import (
    create_flashinfer_kv_indices_triton,
    create_kv_indices,
    kv_indices_reference,
)
from sglang.srt.rdna4.attention.window import (
    update_sliding_window_buffer,
    update_sliding_window_buffer_cuda_graph,
)

POISON = -7


def _problem(device="cpu", lens=(600, 1, 0, 1100), max_ctx=1200, seed=0):
    gen = torch.Generator().manual_seed(seed)
    r2t = torch.randint(0, 5000, (8, max_ctx), generator=gen, dtype=torch.int32).to(device)
    pool = torch.tensor([3, 0, 5, 7], dtype=torch.int64, device=device)[: len(lens)]
    lens_t = torch.tensor(lens, dtype=torch.int32, device=device)
    indptr = torch.zeros(len(lens) + 1, dtype=torch.int32, device=device)
    indptr[1:] = lens_t.cumsum(0)
    start = torch.tensor([50, 3, 9, 100], dtype=torch.int64, device=device)[: len(lens)]
    out = torch.full((sum(lens) + 64,), POISON, dtype=torch.int64, device=device)
    return r2t, pool, lens_t, indptr, start, out


@pytest.mark.parametrize("with_start", [False, True])
def test_kv_indices_matches_reference(with_start):
    r2t, pool, lens, indptr, start, out = _problem()
    st = start if with_start else None
    got = create_kv_indices(r2t, pool, lens, indptr, st, out.clone())
    want = kv_indices_reference(r2t, pool, lens, indptr, st, out.clone())
    assert torch.equal(got, want)
    assert (got[int(indptr[-1]):] == POISON).all()  # nothing written past the end
    assert int(got[0]) == int(r2t[3, 50 if with_start else 0])


@pytest.mark.parametrize("with_start", [False, True])
def test_upstream_launch_signature(with_start):
    r2t, pool, lens, indptr, start, out = _problem()
    st = start if with_start else None
    got = out.clone()
    create_flashinfer_kv_indices_triton[(len(lens),)](r2t, pool, lens, indptr, st, got, r2t.stride(0))
    assert torch.equal(got, kv_indices_reference(r2t, pool, lens, indptr, st, out.clone()))


def test_kv_indices_translation_and_partial_batch():
    r2t, pool, lens, indptr, start, out = _problem()
    table = torch.randperm(5001, generator=torch.Generator().manual_seed(1))
    got = create_kv_indices(r2t, pool, lens, indptr, start, out.clone(), translate=table, num_reqs=2)
    want = kv_indices_reference(r2t, pool, lens, indptr, start, out.clone(), translate=table, num_reqs=2)
    assert torch.equal(got, want)
    assert (got[int(indptr[2]):] == POISON).all()


def test_kv_indices_rejects_strided_table():
    r2t, pool, lens, indptr, start, out = _problem()
    with pytest.raises(ValueError, match="row-contiguous"):
        create_kv_indices(r2t[:, ::2], pool, lens, indptr, None, out)


class _SwaAllocator:
    """Stands in for SWATokenToKVPoolAllocator: a full->SWA table, last entry -1."""

    def __init__(self, n: int):
        self.full_to_swa_index_mapping = torch.cat([torch.randperm(n - 1), torch.tensor([-1])])

    def translate_loc_from_full_to_swa(self, loc):
        return self.full_to_swa_index_mapping[loc].to(torch.int32)


def _window_expect(r2t, pool, seq_lens, window, table):
    lens = torch.clamp(seq_lens, max=window)
    start = seq_lens - lens
    rows = [r2t[int(p), int(s): int(s) + int(n)].long() for p, s, n in zip(pool, start, lens)]
    flat = torch.cat(rows)
    return lens, start, (table[flat] if table is not None else flat)


@pytest.mark.parametrize("swa", [False, True])
def test_sliding_window_buffer_eager(swa):
    r2t, pool, _, _, _, _ = _problem()
    alloc = _SwaAllocator(5001) if swa else None
    seq_lens = torch.tensor([600, 1, 30, 1100])
    indptr_buf = torch.zeros(9, dtype=torch.int32)
    indptr, idx, lens, start = update_sliding_window_buffer(indptr_buf, r2t, 64, seq_lens, pool, 4, "cpu", alloc)
    e_lens, e_start, e_idx = _window_expect(r2t, pool, seq_lens, 64, alloc.full_to_swa_index_mapping if swa else None)
    assert torch.equal(lens, e_lens) and torch.equal(start, e_start) and torch.equal(idx, e_idx)
    assert indptr.tolist() == [0] + e_lens.cumsum(0).tolist()


def test_sliding_window_buffer_graph_never_reads_tail():
    r2t, pool, _, _, _, _ = _problem()
    alloc = _SwaAllocator(5001)
    seq_lens = torch.tensor([600, 1, 30])
    buf = torch.full((4 * 64,), 10**12, dtype=torch.int64)  # garbage tail: out of the table's range
    indptr_buf = torch.zeros(9, dtype=torch.int32)
    indptr, idx, lens, start = update_sliding_window_buffer_cuda_graph(
        indptr_buf, buf, r2t, 64, seq_lens, pool[:3], 3, alloc)
    _, _, e_idx = _window_expect(r2t, pool[:3], seq_lens, 64, alloc.full_to_swa_index_mapping)
    n = int(indptr[-1])
    assert idx is buf and torch.equal(buf[:n], e_idx)
    assert (buf[n:] == 10**12).all()


# ---------------------------------------------------------------- GPU, compiled
@pytest.mark.gpu
@pytest.mark.parametrize("with_start", [False, True])
def test_gpu_kv_indices_graph_capture(with_start):
    """Captured once, replayed after the inputs change in place: no host sync inside."""
    r2t, pool, lens, indptr, start, out = _problem("cuda", lens=(600, 1, 0, 1000))
    st = start if with_start else None
    table = torch.randperm(5001, device="cuda")
    create_kv_indices(r2t, pool, lens, indptr, st, out, translate=table)  # compile outside capture
    torch.cuda.synchronize()
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        create_kv_indices(r2t, pool, lens, indptr, st, out, translate=table)
    lens.copy_(torch.tensor([5, 900, 17, 2], dtype=torch.int32, device="cuda"))
    indptr[1:] = lens.cumsum(0)
    pool.copy_(torch.tensor([1, 2, 3, 4], device="cuda"))
    out.fill_(POISON)
    graph.replay()
    torch.cuda.synchronize()
    want = kv_indices_reference(r2t.cpu(), pool.cpu(), lens.cpu(), indptr.cpu(),
                                None if st is None else st.cpu(), torch.full_like(out.cpu(), POISON),
                                translate=table.cpu())
    assert torch.equal(out.cpu(), want)

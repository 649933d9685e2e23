"""HiCache transfer ops: every layout pair against plain indexing of the same buffers."""

from __future__ import annotations

import pytest
import torch

from sgl_kernel import kvcacheio as io

L, H, D, TOK, PAGE = 3, 2, 4, 16, 4
DT = torch.bfloat16
ITEM = H * D * DT.itemsize


def _dev_pool(device):
    k = [torch.randn(TOK, H, D, device=device).to(DT) for _ in range(L)]
    v = [torch.randn(TOK, H, D, device=device).to(DT) for _ in range(L)]
    return k, v


def _ptrs(layers, device):
    return torch.tensor([t.data_ptr() for t in layers], dtype=torch.uint64, device=device)


def _idx(device):
    src = torch.tensor([3, 0, 7, 8], device=device)
    dst = torch.tensor([12, 5, 1, 2], device=device)
    return src, dst


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def device(request):
    return request.param


def test_per_layer_lf_lf_and_mla(device):
    k, v = _dev_pool(device)
    hk, hv = torch.zeros_like(k[0]), torch.zeros_like(v[0])
    src, dst = _idx(device)
    io.transfer_kv_per_layer(src_k=k[1], dst_k=hk, src_v=v[1], dst_v=hv, src_indices=src, dst_indices=dst, item_size=ITEM)
    assert torch.equal(hk[dst], k[1][src]) and torch.equal(hv[dst], v[1][src])
    untouched = torch.ones(TOK, dtype=torch.bool)
    untouched[dst.cpu()] = False
    assert bool((hk.cpu()[untouched] == 0).all())
    m = torch.zeros_like(k[0])
    io.transfer_kv_per_layer_mla(src=k[2], dst=m, src_indices=src, dst_indices=dst, item_size=ITEM)
    assert torch.equal(m[dst], k[2][src])


def test_all_layer_pointer_tables(device):
    k, v = _dev_pool(device)
    hk = [torch.zeros_like(t) for t in k]
    hv = [torch.zeros_like(t) for t in v]
    src, dst = _idx(device)
    io.transfer_kv_all_layer(src_k_layers=_ptrs(k, device), dst_k_layers=_ptrs(hk, device),
                             src_v_layers=_ptrs(v, device), dst_v_layers=_ptrs(hv, device),
                             src_indices=src, dst_indices=dst, item_size=ITEM, num_layers=L)
    for layer in range(L):
        assert torch.equal(hk[layer][dst], k[layer][src]) and torch.equal(hv[layer][dst], v[layer][src])
    m = [torch.zeros_like(t) for t in k]
    io.transfer_kv_all_layer_mla(src_layers=_ptrs(k, device), dst_layers=_ptrs(m, device), src_indices=src,
                                 dst_indices=dst, item_size=ITEM, num_layers=L)
    assert all(torch.equal(m[i][dst], k[i][src]) for i in range(L))


def test_page_first_both_directions(device):
    k, v = _dev_pool(device)
    host_k = torch.zeros(TOK, L, H, D, dtype=DT, device=device)  # page first: [token, layer, ...]
    host_v = torch.zeros_like(host_k)
    src, dst = _idx(device)
    io.transfer_kv_all_layer_lf_pf(src_k_layers=_ptrs(k, device), dst_k=host_k, src_v_layers=_ptrs(v, device),
                                   dst_v=host_v, src_indices=src, dst_indices=dst, item_size=ITEM,
                                   dst_layout_dim=ITEM * L, num_layers=L)
    for layer in range(L):
        assert torch.equal(host_k[dst, layer], k[layer][src]) and torch.equal(host_v[dst, layer], v[layer][src])
    back_k, back_v = torch.zeros_like(k[1]), torch.zeros_like(v[1])
    io.transfer_kv_per_layer_pf_lf(src_k=host_k, dst_k=back_k, src_v=host_v, dst_v=back_v, src_indices=dst,
                                   dst_indices=src, layer_id=1, item_size=ITEM, src_layout_dim=ITEM * L)
    assert torch.equal(back_k[src], k[1][src]) and torch.equal(back_v[src], v[1][src])
    mla_host = torch.zeros(TOK, L, H, D, dtype=DT, device=device)
    io.transfer_kv_all_layer_mla_lf_pf(src_layers=_ptrs(k, device), dst=mla_host, src_indices=src, dst_indices=dst,
                                       item_size=ITEM, dst_layout_dim=ITEM * L, num_layers=L)
    back = torch.zeros_like(k[2])
    io.transfer_kv_per_layer_mla_pf_lf(src=mla_host, dst=back, src_indices=dst, dst_indices=src, layer_id=2,
                                       item_size=ITEM, src_layout_dim=ITEM * L)
    assert torch.equal(back[src], k[2][src])


def test_page_head_both_directions(device):
    k, v = _dev_pool(device)
    pages = TOK // PAGE
    host_k = torch.zeros(pages, H, PAGE, L, D, dtype=DT, device=device)
    host_v = torch.zeros_like(host_k)
    src, dst = _idx(device)
    io.transfer_kv_all_layer_lf_ph(src_k_layers=_ptrs(k, device), dst_k=host_k, src_v_layers=_ptrs(v, device),
                                   dst_v=host_v, src_indices=src, dst_indices=dst, item_size=ITEM,
                                   dst_layout_dim=ITEM * L, num_layers=L, page_size=PAGE, head_num=H)
    for layer in range(L):
        got = host_k[dst // PAGE, :, dst % PAGE, layer]  # [n, H, D]
        assert torch.equal(got, k[layer][src])
    back_k, back_v = torch.zeros_like(k[0]), torch.zeros_like(v[0])
    io.transfer_kv_per_layer_ph_lf(src_k=host_k, dst_k=back_k, src_v=host_v, dst_v=back_v, src_indices=dst,
                                   dst_indices=src, layer_id=0, item_size=ITEM, src_layout_dim=ITEM * L,
                                   page_size=PAGE, head_num=H)
    assert torch.equal(back_k[src], k[0][src]) and torch.equal(back_v[src], v[0][src])


def test_direct_variants(device):
    k, v = _dev_pool(device)
    src, dst = _idx(device)
    hk = [torch.zeros_like(t) for t in k]
    io.transfer_kv_direct(src_layers=k, dst_layers=hk, src_indices=src, dst_indices=dst, page_size=1)
    assert all(torch.equal(hk[i][dst], k[i][src]) for i in range(L))
    pages = TOK // PAGE
    pf_k = torch.zeros(pages, L, PAGE, H, D, dtype=DT, device=device)
    pf_v = torch.zeros_like(pf_k)
    io.transfer_kv_all_layer_direct_lf_pf(src_ptrs=k + v, dst_ptrs=[pf_k, pf_v], src_indices=src,
                                          dst_indices=dst, page_size=PAGE)
    for layer in range(L):
        assert torch.equal(pf_k[dst // PAGE, layer, dst % PAGE], k[layer][src])
        assert torch.equal(pf_v[dst // PAGE, layer, dst % PAGE], v[layer][src])
    bk, bv = torch.zeros_like(k[1]), torch.zeros_like(v[1])
    io.transfer_kv_per_layer_direct_pf_lf(src_ptrs=[pf_k, pf_v], dst_ptrs=[bk, bv], src_indices=dst,
                                          dst_indices=src, layer_id=1, page_size=PAGE)
    assert torch.equal(bk[src], k[1][src]) and torch.equal(bv[src], v[1][src])


def test_empty_indices_are_noops(device):
    k, v = _dev_pool(device)
    e = torch.empty(0, dtype=torch.long, device=device)
    hk = torch.zeros_like(k[0])
    io.transfer_kv_per_layer(src_k=k[0], dst_k=hk, src_v=v[0], dst_v=torch.zeros_like(v[0]), src_indices=e,
                             dst_indices=e, item_size=ITEM)
    io.transfer_kv_all_layer(src_k_layers=_ptrs(k, device), dst_k_layers=_ptrs(k, device),
                             src_v_layers=_ptrs(v, device), dst_v_layers=_ptrs(v, device), src_indices=e,
                             dst_indices=e, item_size=ITEM, num_layers=L)
    assert bool((hk == 0).all())

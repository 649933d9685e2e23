"""Top-k / top-p renormalisation of probability rows (upstream `top_k_renorm_prob`,
`top_p_renorm_prob`), sync-free torch (sort based) on every device.

- top-k: keep p >= (k-th largest p of the row); k <= 0 or k >= vocab keeps the row.
- top-p: keep the smallest prefix of the descending-sorted row whose mass reaches top_p
  (a token is kept when the mass strictly before it is < top_p), plus exact ties of the
  last kept value.
Kept entries are divided by their sum; the rest become 0. Output float32.
"""

from __future__ import annotations

from typing import Union

import torch


def _per_row(value: Union[torch.Tensor, int, float], rows: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        v = value.to(device=device, dtype=dtype).reshape(-1)
        if v.numel() == 1:
            v = v.expand(rows)
        if v.numel() != rows:
            raise ValueError(f"sgl_kernel: per-row parameter has {v.numel()} entries for {rows} rows")
        return v
    return torch.full((rows,), value, dtype=dtype, device=device)


def _renorm(probs: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    kept = torch.where(keep, probs, torch.zeros_like(probs))
    return kept / kept.sum(-1, keepdim=True).clamp_min(torch.finfo(torch.float32).tiny)


def top_k_renorm_prob(probs: torch.Tensor, top_k: Union[torch.Tensor, int], *unused: object) -> torch.Tensor:
    p = probs.float()
    rows, vocab = p.shape
    if rows == 0:
        return p.clone()
    k = _per_row(top_k, rows, torch.long, p.device)
    full = (k <= 0) | (k >= vocab)
    kk = k.clamp(1, vocab)
    sorted_p = torch.sort(p, dim=-1, descending=True).values
    thresh = sorted_p.gather(-1, (kk - 1).unsqueeze(-1))
    keep = (p >= thresh) | full.unsqueeze(-1)
    return _renorm(p, keep)


def top_p_renorm_prob(probs: torch.Tensor, top_p: Union[torch.Tensor, float], *unused: object) -> torch.Tensor:
    p = probs.float()
    rows, vocab = p.shape
    if rows == 0:
        return p.clone()
    tp = _per_row(top_p, rows, torch.float32, p.device).unsqueeze(-1)
    sorted_p = torch.sort(p, dim=-1, descending=True).values
    before = torch.cumsum(sorted_p, dim=-1) - sorted_p
    kept_sorted = before < tp
    kept_sorted[:, 0] = True
    # smallest kept value per row; everything >= it is kept (ties included)
    thresh = torch.where(kept_sorted, sorted_p, torch.full_like(sorted_p, float("inf"))).min(-1, keepdim=True).values
    return _renorm(p, p >= thresh)


def fast_topk(values: torch.Tensor, topk: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, indices) of the top-k along `dim`; k == 1 takes the cheaper max reduction
    (kept dims, like topk's output)."""
    if topk == 1:
        best = torch.max(values, dim=dim, keepdim=True)
        return best.values, best.indices
    res = torch.topk(values, topk, dim=dim)
    return res.values, res.indices

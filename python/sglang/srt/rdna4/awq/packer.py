"""AWQ int4 checkpoint layout: pack, unpack and round-to-nearest (RTN) quantization.

Layout (as AutoAWQ "gemm" checkpoints store it), for a linear layer y = x @ W with
W of shape [K, N] and group size G (G = K means one group per column):

* ``qweight`` [K, N/8] int32: column ``8t+i`` of row k sits in word ``qweight[k, t]``
  at bits ``4*AWQ_ORDER[i] .. 4*AWQ_ORDER[i]+3``;
* ``qzeros`` [K/G, N/8] int32: the zero points, packed the same way;
* ``scales`` [K/G, N] float: ``W[k, n] = (q[k, n] - z[k//G, n]) * s[k//G, n]``.

This is test and benchmark tooling (building AWQ models offline) and the unpacking half
of the float64 reference; the kernels never call it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AWQ_PACK = 8
AWQ_ORDER = (0, 4, 1, 5, 2, 6, 3, 7)


def _nibble_shifts(device: torch.device) -> torch.Tensor:
    return torch.tensor([4 * o for o in AWQ_ORDER], dtype=torch.int64, device=device)


def pack_int4(values: torch.Tensor) -> torch.Tensor:
    """[R, C] integers in 0..15 -> [R, C/8] int32 in AWQ nibble order."""
    if values.dim() != 2 or values.shape[1] % AWQ_PACK != 0:
        raise ValueError(
            f"pack_int4: expected a 2-D tensor whose last dim is a multiple of 8, "
            f"got shape {tuple(values.shape)}"
        )
    v = values.to(torch.int64)
    if v.numel() and (int(v.min()) < 0 or int(v.max()) > 15):
        raise ValueError("pack_int4: values must lie in 0..15 (4-bit)")
    rows, cols = v.shape
    v = v.reshape(rows, cols // AWQ_PACK, AWQ_PACK)
    words = (v << _nibble_shifts(v.device)).sum(dim=-1)
    # Wrap to the signed int32 range the checkpoints use.
    words = torch.where(words >= 2**31, words - 2**32, words)
    return words.to(torch.int32)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """[R, C/8] int32 in AWQ nibble order -> [R, C] int64 in 0..15 (natural column order)."""
    if packed.dim() != 2 or packed.dtype != torch.int32:
        raise ValueError(
            f"unpack_int4: expected a 2-D int32 tensor, got {packed.dtype} "
            f"shape {tuple(packed.shape)}"
        )
    w = packed.to(torch.int64) & 0xFFFFFFFF
    nib = (w.unsqueeze(-1) >> _nibble_shifts(w.device)) & 0xF
    return nib.reshape(packed.shape[0], packed.shape[1] * AWQ_PACK)


@dataclass
class AWQPacked:
    qweight: torch.Tensor  # [K, N/8] int32
    qzeros: torch.Tensor  # [K/G, N/8] int32
    scales: torch.Tensor  # [K/G, N]
    group_size: int

    @property
    def in_features(self) -> int:
        return self.qweight.shape[0]

    @property
    def out_features(self) -> int:
        return self.scales.shape[1]


def resolve_group_size(group_size: int, k: int) -> int:
    """AWQ configs write -1 (or K) for one group per column."""
    g = k if group_size in (-1, 0) else group_size
    if g <= 0 or k % g != 0:
        raise ValueError(
            f"AWQ group_size={group_size} does not divide in_features={k}: use a group "
            f"size that divides K, or -1 for one group per column"
        )
    return g


def quantize_rtn(
    weight: torch.Tensor, group_size: int, scale_dtype: torch.dtype = torch.float16
) -> AWQPacked:
    """Asymmetric 4-bit round-to-nearest quantization of ``weight`` [K, N] (y = x @ W).

    Note the orientation: AWQ stores W as [in, out]; an ``nn.Linear.weight`` is [out, in],
    so pass ``linear.weight.t()``.
    """
    if weight.dim() != 2:
        raise ValueError(f"quantize_rtn: weight must be [K, N], got {tuple(weight.shape)}")
    k, n = weight.shape
    if n % AWQ_PACK != 0:
        raise ValueError(f"quantize_rtn: out_features N={n} must be a multiple of 8")
    g = resolve_group_size(group_size, k)
    w = weight.detach().to(torch.float64).reshape(k // g, g, n)
    wmax = w.amax(dim=1)
    wmin = w.amin(dim=1)
    scale = ((wmax - wmin) / 15.0).clamp_min(1e-8)
    # Round the scale to its storage dtype first so q and z are chosen for the scale the
    # kernels will actually read.
    scale = scale.to(scale_dtype).to(torch.float64).clamp_min(1e-8)
    zero = torch.round(-wmin / scale).clamp(0, 15)
    q = torch.round(w / scale.unsqueeze(1) + zero.unsqueeze(1)).clamp(0, 15)
    return AWQPacked(
        qweight=pack_int4(q.reshape(k, n)),
        qzeros=pack_int4(zero),
        scales=scale.to(scale_dtype),
        group_size=g,
    )


def random_awq(
    k: int,
    n: int,
    group_size: int,
    scale_dtype: torch.dtype = torch.float16,
    device: torch.device | str = "cpu",
    seed: int = 0,
) -> AWQPacked:
    """A random AWQ layer (uniform nibbles and zeros, scales ~ 1/sqrt(K)) for tests/benchmarks."""
    g = resolve_group_size(group_size, k)
    if n % AWQ_PACK != 0:
        raise ValueError(f"random_awq: N={n} must be a multiple of 8")
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    q = torch.randint(0, 16, (k, n), generator=gen, device=device)
    z = torch.randint(0, 16, (k // g, n), generator=gen, device=device)
    s = (torch.rand((k // g, n), generator=gen, device=device) + 0.5) * (2.0 / (15.0 * k**0.5))
    return AWQPacked(
        qweight=pack_int4(q),
        qzeros=pack_int4(z),
        scales=s.to(scale_dtype),
        group_size=g,
    )

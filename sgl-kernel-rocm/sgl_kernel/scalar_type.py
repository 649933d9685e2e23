"""Descriptions of the (sub-byte) element types quantized kernels store.

A ScalarType is either an integer type (exponent == 0) of `mantissa` value bits, optionally
signed and optionally stored with a `bias` (stored = value + bias, e.g. `uint4b8` holds
signed 4-bit values offset by 8), or a floating-point type with `exponent` and `mantissa`
bits. Names follow the usual convention: `uint4b8`, `int8`, `float8_e4m3fn` (finite values
only, NaN in the all-ones pattern), `float16_e5m10` (IEEE 754 half).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NanRepr(enum.IntEnum):
    NONE = 0  # no NaN
    IEEE_754 = 1  # exponent all ones, mantissa non-zero
    EXTD_RANGE_MAX_MIN = 2  # NaN only at the all-ones bit pattern (e.g. e4m3fn)


@dataclass(frozen=True)
class ScalarType:
    exponent: int
    mantissa: int
    signed: bool
    bias: int
    _finite_values_only: bool = False
    nan_repr: NanRepr = NanRepr.IEEE_754

    # ---- constructors -------------------------------------------------------------------
    @classmethod
    def int_(cls, size_bits: int, bias: int | None) -> "ScalarType":
        return cls(0, size_bits - 1, True, bias or 0)

    @classmethod
    def uint(cls, size_bits: int, bias: int | None) -> "ScalarType":
        return cls(0, size_bits, False, bias or 0)

    @classmethod
    def float_IEEE754(cls, exponent: int, mantissa: int) -> "ScalarType":
        return cls(exponent, mantissa, True, 0, False, NanRepr.IEEE_754)

    @classmethod
    def float_(cls, exponent: int, mantissa: int, finite_values_only: bool, nan_repr: NanRepr) -> "ScalarType":
        if mantissa <= 0 or exponent <= 0:
            raise ValueError("ScalarType.float_: exponent and mantissa must be positive")
        return cls(exponent, mantissa, True, 0, finite_values_only, NanRepr(nan_repr))

    # ---- properties ---------------------------------------------------------------------
    @property
    def size_bits(self) -> int:
        return self.exponent + self.mantissa + int(self.signed)

    @property
    def id(self) -> int:
        """A stable integer encoding of every field (for passing to compiled kernels)."""
        v = self.exponent
        v |= self.mantissa << 8
        v |= int(self.signed) << 16
        v |= (self.bias & 0xFFFFFFFF) << 17
        v |= int(self._finite_values_only) << 49
        v |= int(self.nan_repr) << 50
        return v

    def is_floating_point(self) -> bool:
        return self.exponent != 0

    def is_integer(self) -> bool:
        return self.exponent == 0

    def is_signed(self) -> bool:
        return self.signed

    def has_bias(self) -> bool:
        return self.bias != 0

    def has_infs(self) -> bool:
        return not self._finite_values_only

    def has_nans(self) -> bool:
        return self.nan_repr != NanRepr.NONE

    def is_ieee_754(self) -> bool:
        return self.nan_repr == NanRepr.IEEE_754 and not self._finite_values_only

    def _raw_max(self) -> int | float:
        if self.is_integer():
            return (1 << self.mantissa) - 1
        max_mantissa = (1 << self.mantissa) - 1
        if self.nan_repr == NanRepr.EXTD_RANGE_MAX_MIN:
            max_mantissa -= 1  # all-ones is NaN
        max_exp = (1 << self.exponent) - 2
        if self.nan_repr in (NanRepr.EXTD_RANGE_MAX_MIN, NanRepr.NONE):
            max_exp += 1  # the all-ones exponent holds finite values
        exp_bias = (1 << (self.exponent - 1)) - 1
        return (1 + max_mantissa / (1 << self.mantissa)) * 2.0 ** (max_exp - exp_bias)

    def _raw_min(self) -> int | float:
        if self.is_floating_point():
            return -self._raw_max()
        return -(1 << self.mantissa) if self.signed else 0

    def max(self) -> int | float:
        """Largest representable value (after removing the bias)."""
        return self._raw_max() - self.bias

    def min(self) -> int | float:
        return self._raw_min() - self.bias

    @property
    def name(self) -> str:
        if self.is_floating_point():
            s = f"float{self.size_bits}_e{self.exponent}m{self.mantissa}"
            if not self.is_ieee_754():
                if self._finite_values_only:
                    s += "f"
                if self.nan_repr != NanRepr.NONE:
                    s += "n"
            return s
        s = ("int" if self.signed else "uint") + str(self.size_bits)
        if self.has_bias():
            s += f"b{self.bias}"
        return s

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"ScalarType.{self.name}"


class scalar_types:
    int4 = ScalarType.int_(4, None)
    uint4 = ScalarType.uint(4, None)
    int8 = ScalarType.int_(8, None)
    uint8 = ScalarType.uint(8, None)
    float8_e4m3fn = ScalarType.float_(4, 3, True, NanRepr.EXTD_RANGE_MAX_MIN)
    float8_e5m2 = ScalarType.float_IEEE754(5, 2)
    float16_e8m7 = ScalarType.float_IEEE754(8, 7)
    float16_e5m10 = ScalarType.float_IEEE754(5, 10)
    float6_e3m2f = ScalarType.float_(3, 2, True, NanRepr.NONE)
    float4_e2m1f = ScalarType.float_(2, 1, True, NanRepr.NONE)
    uint2b2 = ScalarType.uint(2, 2)
    uint3b4 = ScalarType.uint(3, 4)
    uint4b8 = ScalarType.uint(4, 8)
    uint8b128 = ScalarType.uint(8, 128)
    bfloat16 = float16_e8m7
    float16 = float16_e5m10


__all__ = ["NanRepr", "ScalarType", "scalar_types"]

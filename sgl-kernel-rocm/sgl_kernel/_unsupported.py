"""Call-time failures for upstream ops this package does not implement.

Importing such a symbol must work (upstream imports many of them at module level on paths
RDNA4 never takes); calling one raises NotImplementedError naming the op, the feature that
needs it and what to do instead.
"""

from __future__ import annotations

from typing import Any, Callable, NoReturn

UNSUPPORTED_MARK = "__sgl_kernel_unsupported__"


class UnsupportedOpError(NotImplementedError):
    pass


def unsupported(name: str, feature: str, advice: str) -> Callable[..., NoReturn]:
    def _op(*args: Any, **kwargs: Any) -> NoReturn:
        raise UnsupportedOpError(
            f"sgl_kernel.{name} is not implemented in sgl-kernel-rocm (needed by: {feature}). "
            f"{advice}"
        )

    _op.__name__ = name
    _op.__qualname__ = name
    _op.__doc__ = f"Unsupported in sgl-kernel-rocm: {feature}. {advice}"
    setattr(_op, UNSUPPORTED_MARK, (feature, advice))
    return _op


def is_unsupported(obj: object) -> bool:
    return hasattr(obj, UNSUPPORTED_MARK)

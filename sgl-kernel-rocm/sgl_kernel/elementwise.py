"""`sgl_kernel.elementwise`: upstream symbols without an implementation here (call-time errors)."""

from sgl_kernel._stub_modules import SUBMODULES as _SUBMODULES
from sgl_kernel._unsupported import unsupported as _unsupported

for _name, (_feature, _advice) in _SUBMODULES["elementwise"].items():
    globals()[_name] = _unsupported(_name, _feature, _advice)

__all__ = list(_SUBMODULES["elementwise"])

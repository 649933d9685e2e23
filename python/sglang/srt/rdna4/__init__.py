"""RDNA4 (gfx1200/gfx1201) support for SGLang: platform defaults and kernels.

Keep this package importable without the rest of the upstream tree: kernels and
their tests import ``sglang.srt.rdna4.*`` directly.
"""

from sglang.srt.rdna4.platform import is_rdna4

__all__ = ["is_rdna4"]

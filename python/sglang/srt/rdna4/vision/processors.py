"""Processor classes to use where HF's own needs torchvision and torchvision is missing.

Registered once at import into SGLang's per-model-type processor table (the one
`get_processor` consults before `AutoProcessor`); with torchvision installed nothing changes.
"""

from __future__ import annotations

import importlib.util
import logging

logger = logging.getLogger(__name__)


def torchvision_available() -> bool:
    return importlib.util.find_spec("torchvision") is not None


def pil_processor_classes() -> dict[str, type]:
    """model_type -> processor class built from PIL parts."""
    from sglang.srt.rdna4.gemma4.processor import Gemma4PilProcessor
    from sglang.srt.rdna4.vision.pixtral_processor import PixtralPilProcessor
    from sglang.srt.rdna4.vision.qwen_processor import QWEN_VL_MODEL_TYPES, QwenVLImageProcessor

    return {"mistral3": PixtralPilProcessor, "pixtral": PixtralPilProcessor,
            "gemma4": Gemma4PilProcessor,
            **dict.fromkeys(QWEN_VL_MODEL_TYPES, QwenVLImageProcessor)}


def register_pil_processors(table: dict[str, type]) -> None:
    """Fill `table` (model_type -> processor class) where torchvision is missing; entries that
    SGLang itself registered win."""
    if torchvision_available():
        return
    for model_type, cls in pil_processor_classes().items():
        table.setdefault(model_type, cls)

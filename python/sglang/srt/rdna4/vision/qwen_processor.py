"""The Qwen3-VL / Qwen3.5 processor without torchvision: images only.

HF's `Qwen3VLProcessor` requires a video processor, and transformers' Qwen3-VL video
processor needs torchvision, which is not installable on every RDNA4 / CPU set-up; so
`AutoProcessor` cannot load a Qwen3.5 checkpoint there at all. This subclass is HF's
processor with the video sub-processor left out: the image path (transformers' PIL image
processor, then one `<|image_pad|>` per merged patch) is HF's own code, and a video input
fails with a message naming the fix. `sglang.srt.rdna4.vision.processors` registers it for
the Qwen-VL model types where torchvision is missing.
"""

from __future__ import annotations

from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor

QWEN_VL_MODEL_TYPES = ("qwen3_vl", "qwen3_vl_moe", "qwen3_5", "qwen3_5_moe")


class QwenVLImageProcessor(Qwen3VLProcessor):
    """HF's Qwen3-VL processor (also Qwen3.5's) with images and text, no video."""

    # The sub-processors ProcessorMixin loads and saves come from this signature.
    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)
        self.video_processor = None

    def __call__(self, images=None, text=None, videos=None, **kwargs):
        if videos is not None:
            raise ValueError(
                "Qwen-VL video input needs transformers' video processor, which needs torchvision: "
                "install torchvision to serve videos (images work without it)"
            )
        return super().__call__(images=images, text=text, **kwargs)


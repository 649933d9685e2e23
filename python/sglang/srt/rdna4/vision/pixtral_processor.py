"""A Pixtral / Mistral 3 processor built from transformers' PIL image processor.

HF's `PixtralProcessor` module imports the torchvision image processor at import time, and
torchvision is not installable on every RDNA4 / CPU set-up. This processor does the same job
from parts that need only PIL: the PIL Pixtral image processor resizes and normalizes, and the
prompt's `[IMG]` placeholder is expanded to the image's token grid: one row of `[IMG]` per
row of merged patches, each row closed by `[IMG_BREAK]`, the last one by `[IMG_END]`.
"""

from __future__ import annotations

from transformers import BatchFeature, ProcessorMixin
from transformers.processing_utils import ProcessingKwargs


class PixtralPilProcessorKwargs(ProcessingKwargs, total=False):
    # transformers reads this TypedDict attribute as is (no ClassVar annotation there)
    _defaults = {  # noqa: RUF012
        "text_kwargs": {"padding": False}, "common_kwargs": {"return_tensors": "pt"},
    }


class PixtralPilProcessor(ProcessorMixin):
    """`images` + `text` -> input ids with expanded image tokens, pixel values, image sizes."""

    def __init__(self, image_processor=None, tokenizer=None, patch_size: int = 16,
                 spatial_merge_size: int = 1, chat_template=None, image_token: str = "[IMG]",
                 image_break_token: str = "[IMG_BREAK]", image_end_token: str = "[IMG_END]",
                 **kwargs):
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        self.patch_size = patch_size
        self.spatial_merge_size = spatial_merge_size
        self.image_token = image_token
        self.image_break_token = image_break_token
        self.image_end_token = image_end_token
        unknown = [t for t in (image_token, image_break_token, image_end_token)
                   if tokenizer.convert_tokens_to_ids(t) in (None, tokenizer.unk_token_id)]
        if unknown:
            raise ValueError(f"PixtralPilProcessor: the tokenizer has no token {unknown}; the "
                             "checkpoint's processor_config.json must name its image tokens")
        self.image_token_id = tokenizer.convert_tokens_to_ids(image_token)

    def image_token_grid(self, height: int, width: int) -> str:
        """The token string that stands for one processed image of `height` x `width` pixels."""
        step = self.patch_size * self.spatial_merge_size
        rows, cols = height // step, width // step
        if rows < 1 or cols < 1:
            raise ValueError(f"PixtralPilProcessor: a {height}x{width} image is smaller than one "
                             f"{step}x{step} merged patch")
        row = self.image_token * cols + self.image_break_token
        return (row * rows)[: -len(self.image_break_token)] + self.image_end_token

    def __call__(self, images=None, text=None, **kwargs) -> BatchFeature:
        out = self._merge_kwargs(PixtralPilProcessorKwargs,
                                 tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs)
        if text is None:
            raise ValueError("PixtralPilProcessor needs `text` with one [IMG] per image")
        texts = [text] if isinstance(text, str) else list(text)
        image_inputs = {}
        if images is not None:
            out["images_kwargs"]["patch_size"] = self.patch_size * self.spatial_merge_size
            image_inputs = self.image_processor(images, **out["images_kwargs"])
            sizes = [tuple(int(v) for v in s) for s in image_inputs["image_sizes"]]
            placeholders = sum(t.count(self.image_token) for t in texts)
            if placeholders != len(sizes):
                raise ValueError(f"PixtralPilProcessor: {placeholders} {self.image_token} in the "
                                 f"text for {len(sizes)} images")
            grids = iter(self.image_token_grid(h, w) for h, w in sizes)
            texts = ["".join(part if i == 0 else next(grids) + part
                             for i, part in enumerate(t.split(self.image_token))) for t in texts]
        return_tensors = out["text_kwargs"].pop("return_tensors", None)
        text_inputs = self.tokenizer(texts, **out["text_kwargs"], return_tensors=None)
        return BatchFeature(data={**text_inputs, **image_inputs}, tensor_type=return_tensors)

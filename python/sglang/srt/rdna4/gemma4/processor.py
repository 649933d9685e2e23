"""A Gemma 4 image processor built from transformers' PIL parts.

transformers' `Gemma4Processor` cannot be built without torchvision: it requires a video
processor (torchvision-only), and `AutoImageProcessor` refuses to load without torchvision.
This processor does the image + text part from pieces that need only PIL: the PIL Gemma 4
image processor resizes, rescales and patchifies each image, and every image placeholder in
the prompt becomes `boi + image_token * n + eoi`, n being the image's number of soft tokens
(its patches / pooling_kernel_size^2). Video and audio inputs are refused with a clear error.
"""

from __future__ import annotations

from transformers import AutoTokenizer, BatchFeature, ProcessorMixin
from transformers.processing_utils import ProcessingKwargs

# The tokenizer attributes Gemma 4 checkpoints name their image tokens by.
_TOKEN_ATTRS = ("image_token", "boi_token", "eoi_token")


class Gemma4PilProcessorKwargs(ProcessingKwargs, total=False):
    _defaults = {"text_kwargs": {"padding": False}}  # noqa: RUF012 - transformers reads it


class Gemma4PilProcessor(ProcessorMixin):
    """`images` + `text` -> input ids with expanded image tokens, `pixel_values` (patchified,
    padded to the image processor's patch budget) and `image_position_ids`."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, chat_template=chat_template)
        missing = [a for a in _TOKEN_ATTRS if not getattr(tokenizer, a, None)]
        if missing:
            raise ValueError(
                f"Gemma4PilProcessor: the tokenizer defines no {missing}; the checkpoint's "
                "tokenizer_config.json must name them (extra_special_tokens)"
            )
        self.image_token = tokenizer.image_token
        self.boi_token = tokenizer.boi_token
        self.eoi_token = tokenizer.eoi_token
        self.image_token_id = tokenizer.convert_tokens_to_ids(self.image_token)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *args, **kwargs):
        from transformers.models.gemma4.image_processing_pil_gemma4 import Gemma4ImageProcessorPil

        name = pretrained_model_name_or_path
        hub_kwargs = {k: kwargs[k] for k in ("revision", "trust_remote_code") if k in kwargs}
        tokenizer = AutoTokenizer.from_pretrained(name, **hub_kwargs)
        try:
            image_processor = Gemma4ImageProcessorPil.from_pretrained(
                name, revision=kwargs.get("revision")
            )
        except OSError as err:
            raise ValueError(
                f"Gemma4PilProcessor: no image processor config (preprocessor_config.json) for "
                f"{name}; serving images needs the checkpoint's (or install torchvision)"
            ) from err
        # transformers loads the checkpoint's chat_template.jinja into the tokenizer
        return cls(image_processor, tokenizer, chat_template=tokenizer.chat_template)

    def image_placeholder(self, num_soft_tokens: int) -> str:
        return self.boi_token + self.image_token * num_soft_tokens + self.eoi_token

    def __call__(self, images=None, text=None, videos=None, audio=None, **kwargs) -> BatchFeature:
        if videos or audio:
            raise ValueError(
                "Gemma4PilProcessor serves images only: video and audio inputs need transformers' "
                "Gemma4Processor, which needs torchvision (install it to serve them)"
            )
        if text is None:
            raise ValueError(
                f"Gemma4PilProcessor needs `text` with one {self.image_token} per image"
            )
        out = self._merge_kwargs(
            Gemma4PilProcessorKwargs, tokenizer_init_kwargs=self.tokenizer.init_kwargs, **kwargs
        )
        texts = [text] if isinstance(text, str) else list(text)
        image_inputs = {}
        if images:
            image_inputs = dict(self.image_processor(images, **out["images_kwargs"]))
            counts = [int(n) for n in image_inputs.pop("num_soft_tokens_per_image")]
            placeholders = sum(t.count(self.image_token) for t in texts)
            if placeholders != len(counts):
                raise ValueError(
                    f"Gemma4PilProcessor: {placeholders} {self.image_token} in the "
                    f"text for {len(counts)} images"
                )
            expanded = iter(self.image_placeholder(n) for n in counts)
            texts = [
                "".join(
                    part if i == 0 else next(expanded) + part
                    for i, part in enumerate(t.split(self.image_token))
                )
                for t in texts
            ]
        return_tensors = out["text_kwargs"].pop("return_tensors", None)
        text_inputs = self.tokenizer(texts, **out["text_kwargs"], return_tensors=None)
        return BatchFeature(data={**text_inputs, **image_inputs}, tensor_type=return_tensors)

"""The BOS rule for multimodal prompts.

On the multimodal chat route SGLang renders the chat template to ids, decodes them back to
text and lets the model's processor tokenize that text together with the images. A template
that writes `{{ bos_token }}` itself (Mistral's, Gemma's) then gets a second BOS from the
tokenizer's own special tokens, and the model sees a prompt it was never trained on. HF's
`ProcessorMixin.apply_chat_template` avoids this by tokenizing without special tokens when the
rendered text already starts with BOS; SGLang's processors follow the same rule here.
"""

from __future__ import annotations


def starts_with_bos(tokenizer, text) -> bool:
    """True when `text` (a string, or a one-element list of strings) already begins with the
    tokenizer's BOS token, so tokenizing it with special tokens would add a second one."""
    bos = getattr(tokenizer, "bos_token", None)
    if isinstance(text, (list, tuple)):
        text = text[0] if len(text) == 1 else None
    return bool(bos) and isinstance(text, str) and text.startswith(bos)


def special_tokens_kwargs(tokenizer, text) -> dict:
    """Keyword arguments for a tokenizer / processor call on `text`: `add_special_tokens=False`
    when the text starts with BOS, else nothing (the callee's default)."""
    return {"add_special_tokens": False} if starts_with_bos(tokenizer, text) else {}


def multimodal_prompt_kwargs(processed) -> dict:
    """The prompt of a chat request to a multimodal model, from serving_chat's processed
    messages: the rendered text when images, video or audio must be expanded by the processor
    (which then applies the BOS rule above), else the template's own token ids, as a text-only
    model gets them (decoding them and tokenizing the text again would add a second BOS)."""
    has_media = any((processed.image_data, processed.video_data, processed.audio_data))
    ids = processed.prompt_ids
    if has_media or not isinstance(ids, list) or not ids:
        return {"text": processed.prompt}
    return {"input_ids": ids}

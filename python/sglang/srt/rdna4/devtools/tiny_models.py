"""Tiny random-weight models built locally, and HF transformers' greedy reference.

Nothing is downloaded: the tokenizer has one token per printable ASCII character (plus
newline and a few special tokens) and a chat template, and the weights are random.
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = ["<|pad|>", "<|bos|>", "<|eos|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}{{ eos_token }}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)


def build_tokenizer(out_dir: Path):
    """A byte-level tokenizer over printable ASCII and newline (one token per character)
    plus special tokens, saved as a HF fast tokenizer.

    Every token decodes to complete UTF-8 on its own, so streamed text equals the decoded
    ids exactly, whatever a random model generates.
    """
    tokenizer = byte_level_tokenizer(
        SPECIAL_TOKENS, CHAT_TEMPLATE, bos_token="<|bos|>", eos_token="<|eos|>",
        pad_token="<|pad|>", additional_special_tokens=SPECIAL_TOKENS[3:])
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def byte_level_tokenizer(special: list[str], chat_template: str, *, prepend_bos: str | None = None,
                         **special_tokens):
    """`special` (ids 0, 1, ...) then one token per printable ASCII character and newline, as an
    unsaved HF fast tokenizer. `prepend_bos` names a token a plain encode starts with (as
    Mistral's tokenizers do); `special_tokens` are PreTrainedTokenizerFast's (bos_token=...)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    byte_to_char = _byte_level_chars()
    vocab = {tok: i for i, tok in enumerate(special)}
    for byte in [10, *range(32, 127)]:
        vocab[byte_to_char[byte]] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=special_tokens.get("unk_token")))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    if prepend_bos is not None:
        core.post_processor = processors.TemplateProcessing(
            single=f"{prepend_bos} $A", pair=f"{prepend_bos} $A {prepend_bos} $B",
            special_tokens=[(prepend_bos, vocab[prepend_bos])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, **special_tokens)
    tokenizer.chat_template = chat_template
    return tokenizer


def _byte_level_chars() -> dict[int, str]:
    """GPT-2's byte -> printable character map, which the ByteLevel pre-tokenizer uses."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1))
    printable += list(range(ord("\xae"), ord("\xff") + 1))
    mapping = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def build_model(config, out_dir: Path, seed: int = 0, init_std: float = 0.1) -> Path:
    """Random-weight causal LM from `config`, saved in float32 with a tokenizer beside it.

    `init_std` is larger than the usual 0.02 so random logits are far from ties.
    """
    import torch
    from transformers import AutoModelForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(out_dir)
    config.vocab_size = len(tokenizer)
    config.bos_token_id = tokenizer.bos_token_id
    config.eos_token_id = tokenizer.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.initializer_range = init_std
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def hf_greedy(model_dir: Path, input_ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy continuation by HF transformers in float32, EOS ignored."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()
    ids = torch.tensor([input_ids])
    out: list[int] = []
    with torch.no_grad():
        past = None
        step_input = ids
        for _ in range(max_new_tokens):
            res = model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = res.past_key_values
            nxt = int(res.logits[0, -1].argmax())
            out.append(nxt)
            step_input = torch.tensor([[nxt]])
    return out

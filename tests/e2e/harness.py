"""End-to-end harness: tiny random-weight models built locally, the real server, HF greedy.

Nothing is downloaded: the tokenizer is a byte-level BPE with no merges (every byte is a
token) plus a few special tokens and a chat template, and the weights are random.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import requests

REPO_ROOT = Path(__file__).resolve().parents[2]
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
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    byte_to_char = _byte_level_chars()
    vocab = {tok: i for i, tok in enumerate(SPECIAL_TOKENS)}
    for byte in [10, *range(32, 127)]:
        vocab[byte_to_char[byte]] = len(vocab)
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<|bos|>",
        eos_token="<|eos|>",
        pad_token="<|pad|>",
        additional_special_tokens=SPECIAL_TOKENS[3:],
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir)
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


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CPU_SERVER_ARGS = [
    "--device", "cpu",
    "--attention-backend", "torch_native",
    "--dtype", "float32",
    "--max-total-tokens", "4096",
    "--max-running-requests", "8",
    "--mem-fraction-static", "0.2",
    "--disable-cuda-graph",
    "--skip-server-warmup",
]
CPU_SERVER_ENV = {"SGLANG_USE_CPU_ENGINE": "1", "CUDA_VISIBLE_DEVICES": ""}


class Server:
    """`python -m sglang.launch_server` as a subprocess on a free loopback port."""

    def __init__(self, model_dir: Path, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 300.0,
                 log_path: Path | None = None):
        self.model_dir = Path(model_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable, "-m", "sglang.launch_server",
            "--model-path", str(self.model_dir),
            "--host", "127.0.0.1", "--port", str(self.port),
            *CPU_SERVER_ARGS, *(extra_args or []),
        ]
        self.env = {**os.environ, **CPU_SERVER_ENV, **(env or {})}
        self.startup_timeout = startup_timeout
        self.log_path = log_path or (self.model_dir / "server.log")
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "Server":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if requests.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(1.0)
        self.__exit__(None, None, None)
        raise TimeoutError(f"server not healthy after {self.startup_timeout}s:\n{self.log_tail()}")

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=30)
        self._log.close()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def generate(self, input_ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy token ids from the native /generate endpoint (EOS ignored)."""
        body = {
            "input_ids": input_ids,
            "sampling_params": {"temperature": 0, "max_new_tokens": max_new_tokens, "ignore_eos": True},
            "return_logprob": True,
            "logprob_start_len": -1,
        }
        res = requests.post(f"{self.url}/generate", json=body, timeout=300)
        res.raise_for_status()
        meta = res.json()["meta_info"]
        return [int(t[1]) for t in meta["output_token_logprobs"]]

    def post(self, route: str, body: dict, stream: bool = False) -> requests.Response:
        res = requests.post(f"{self.url}{route}", json=body, timeout=300, stream=stream)
        return res


def sse_events(response: requests.Response) -> Iterator[dict]:
    """Parsed `data:` events of a streaming OpenAI-style response, until [DONE]."""
    for raw in response.iter_lines():
        line = raw.decode() if isinstance(raw, bytes) else raw
        if not line.startswith("data:"):
            continue
        payload = line[len("data:"):].strip()
        if payload == "[DONE]":
            return
        yield json.loads(payload)

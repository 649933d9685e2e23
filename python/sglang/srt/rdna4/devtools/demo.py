"""Demo: serve a tiny random-weight Llama built on this machine, and send it requests.

    python -m sglang.srt.rdna4.devtools.demo [--device cpu|cuda] [--keep-running]

The model's weights are random (nothing is downloaded), so its text is gibberish: the
demo shows the server working end to end and that its greedy tokens equal HF
transformers' on the same weights.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from sglang.srt.rdna4.devtools.local_server import Server
from sglang.srt.rdna4.devtools.tiny_models import build_model, hf_greedy


def tiny_llama_config():
    from transformers import LlamaConfig

    return LlamaConfig(
        hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep-running", action="store_true", help="leave the server up until Ctrl+C")
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="sglang-rdna4-demo-"))
    print(f"Building a tiny Llama with RANDOM weights in {workdir} (nothing is downloaded) ...")
    model_dir = build_model(tiny_llama_config(), workdir / "tiny-llama", seed=0)

    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    prompt = "Hello from RDNA4"
    prompt_ids = tokenizer(prompt)["input_ids"]
    print("Starting python -m sglang.launch_server on CPU ...")
    with Server(model_dir) as server:
        print(f"Server up at {server.url} (log: {server.log_path})")
        res = server.post("/v1/completions", {
            "model": "tiny", "prompt": prompt, "max_tokens": 16, "temperature": 0, "ignore_eos": True,
        })
        res.raise_for_status()
        text = res.json()["choices"][0]["text"]
        print(f"POST /v1/completions {prompt!r} -> {text!r}")
        got = server.generate(prompt_ids, 16)
        want = hf_greedy(model_dir, prompt_ids, 16)
        same = "identical" if got == want else "DIFFERENT"
        print(f"Greedy tokens vs HF transformers on the same weights: {same}")
        if args.keep_running:
            print("Serving until Ctrl+C ...")
            try:
                server.proc.wait()
            except KeyboardInterrupt:
                pass
        return 0 if got == want else 1


if __name__ == "__main__":
    raise SystemExit(main())

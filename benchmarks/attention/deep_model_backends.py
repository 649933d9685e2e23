"""60-layer deep check through SGLang's real attention backends (issue #5).

Builds a tiny random Gemma 3 text model (60 layers, 5 sliding-window layers then one
full-attention layer, a 64-token window, softcapped logits), decodes `--steps` tokens with
HF transformers in float32 (the reference, eager attention, exact sliding windows; tokens
sampled at temperature 1 with a fixed seed, because greedy decoding of a random model is a
one-token loop), then runs each SGLang engine on the same tokens by teacher forcing: a custom logit
processor records the engine's full logit row at every step and then forces the reference
token, so every engine decodes the same sequence and every step is compared. Steps 1.. come
from the decode path (step 0 is the prefill's last token).

The float32 reference is HF (eager attention, exact sliding windows), independent of SGLang;
SGLang's own float32 paths (triton fp32, torch_native fp32) are compared against it too, so
the harness itself is checked (both should sit near 0).

Engines (one subprocess each, so SGLANG_RDNA4 is read fresh):
- triton_bf16_rdna4:    triton backend, bf16, SGLANG_RDNA4=1 (our kernels)
- triton_bf16_upstream: triton backend, bf16, SGLANG_RDNA4=0 (upstream 0.5.10's kernels)
- triton_fp32_rdna4:    triton backend, float32, SGLANG_RDNA4=1 (harness check: ~0 expected)
- torch_native_fp32:    torch_native backend, float32 (slow on GPU: no CUDA graphs)
plus hf_bf16: HF transformers eager in bf16 on the same tokens (one full-sequence forward):
the BF16 noise yardstick that sets the tolerance (pass: max |dlogprob| over the reference's top-k <= 2x
hf_bf16's maximum at every step).

GPU:  python benchmarks/attention/deep_model_backends.py --cuda-graph --out deep.json
CPU (small, torch_native only):  SGLANG_USE_CPU_ENGINE=1 python ... --device cpu \
      --layers 6 --steps 24 --engines torch_native_fp32
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from sglang.srt.sampling.custom_logit_processor import CustomLogitProcessor

REPO = Path(__file__).resolve().parents[2]
PROMPT = "The quick brown fox jumps over the lazy dog. "

ENGINES = {
    # name: (attention backend, dtype, SGLANG_RDNA4)
    "triton_bf16_rdna4": ("triton", "bfloat16", "1"),
    "triton_bf16_upstream": ("triton", "bfloat16", "0"),
    "triton_fp32_rdna4": ("triton", "float32", "1"),
    "torch_native_fp32": ("torch_native", "float32", "1"),
}
BF16_ENGINES = ("triton_bf16_rdna4", "triton_bf16_upstream")


class ForceAndRecord(CustomLogitProcessor):
    """Records each step's logit row (float64, host), then forces the given token.

    Runs inside the scheduler process; state is kept on the class (the deserialized class
    is cached there, instances are not). Params: steps, dump (a .pt path), forced (token ids).
    """

    rows: dict = {}

    def __call__(self, logits, custom_param_list=None):
        import torch as _torch

        store = type(self).rows
        for i, params in enumerate(custom_param_list or []):
            if not params or "dump" not in params:
                continue
            rows = store.setdefault(params["__req__"].rid, [])
            rows.append(logits[i].detach().to(_torch.float64).cpu())
            step = len(rows) - 1
            forced = params["forced"]
            logits[i].fill_(float("-inf"))
            logits[i, forced[step]] = 0.0
            if len(rows) == params["steps"]:
                _torch.save(_torch.stack(rows), params["dump"])
        return logits


def build_gemma3(out_dir: Path, layers: int, window: int, head_dim: int, kv_heads: int,
                 seed: int = 0) -> Path:
    """Random Gemma 3 text model + ASCII tokenizer, saved in float32.

    Weights are N(0, 0.05); embeddings N(0, 0.03) (x sqrt(hidden) = 0.5 at the input) and the
    final norm scaled 4x, so next-token distributions are neither flat (near ties flip under
    BF16 noise) nor one-hot (top-1 probability ~0.5 on average).
    """
    from transformers import AutoModelForCausalLM, Gemma3TextConfig

    from sglang.srt.rdna4.devtools.tiny_models import build_tokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer(out_dir)
    full_every = 6
    config = Gemma3TextConfig(
        hidden_size=256, intermediate_size=512, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=kv_heads, head_dim=head_dim,
        query_pre_attn_scalar=head_dim, sliding_window=window, max_position_embeddings=4096,
        layer_types=["full_attention" if (i + 1) % full_every == 0 else "sliding_attention"
                     for i in range(layers)],
        final_logit_softcapping=30.0, tie_word_embeddings=True, vocab_size=len(tok),
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, initializer_range=0.05,
    )
    config.architectures = ["Gemma3ForCausalLM"]
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        emb = model.model.embed_tokens.weight
        emb.copy_(torch.randn_like(emb) * 0.03)
        model.model.norm.weight.fill_(3.0)  # Gemma norms scale by (1 + w)
    model.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


@torch.no_grad()
def hf_decode(model_dir: Path, prompt: list[int], steps: int, dtype, device,
              forced: list[int] | None = None, seed: int = 0) -> tuple[list[int], torch.Tensor]:
    """Decode with HF eager attention, one token per forward (KV cache); logit rows in float64.

    Without `forced`, tokens are sampled at temperature 1 from the model's own distribution
    (seeded): greedy decoding of a random model falls into a one-token loop at once, and a
    context of identical tokens makes every attention output trivially exact.
    """
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype,
                                                 attn_implementation="eager").to(device).eval()
    gen = torch.Generator().manual_seed(seed)
    tokens, rows = [], []
    past, step_input = None, torch.tensor([prompt], device=device)
    for t in range(steps):
        res = model(input_ids=step_input, past_key_values=past, use_cache=True)
        past = res.past_key_values
        row = res.logits[0, -1].to(torch.float64).cpu()
        rows.append(row)
        if forced is not None:
            nxt = forced[t]
        else:
            nxt = int(torch.multinomial(torch.softmax(row, -1), 1, generator=gen))
        tokens.append(nxt)
        step_input = torch.tensor([[nxt]], device=device)
    del model, past, res
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return tokens, torch.stack(rows)


@torch.no_grad()
def hf_forced_rows(model_dir: Path, prompt: list[int], tokens: list[int], dtype, device) -> torch.Tensor:
    """Logit rows of HF eager for the forced sequence, in one full-sequence forward."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype,
                                                 attn_implementation="eager").to(device).eval()
    ids = torch.tensor([prompt + tokens[:-1]], device=device)
    logits = model(input_ids=ids).logits[0, len(prompt) - 1:].to(torch.float64).cpu()
    del model
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return logits


def run_engine(args) -> None:
    """Worker: one SGLang engine, teacher forced on the reference tokens; saves logit rows."""
    import sglang

    spec = json.loads(Path(args.spec).read_text())
    backend, dtype, _ = ENGINES[args.engine]
    kwargs = dict(
        model_path=spec["model_dir"], dtype=dtype, attention_backend=backend,
        sampling_backend="pytorch", grammar_backend="none", disable_radix_cache=True,
        disable_overlap_schedule=True,
        enable_custom_logit_processor=True, max_total_tokens=4096, max_running_requests=4,
        mem_fraction_static=args.mem_fraction, log_level="warning", random_seed=0, port=args.port,
        disable_cuda_graph=not args.cuda_graph,
        disable_piecewise_cuda_graph=True,  # prefill graphs: start-up time, nothing to compare
    )
    if args.device == "cpu":
        kwargs["device"] = "cpu"
    else:
        kwargs["cuda_graph_max_bs"] = 1
    t0 = time.time()
    engine = sglang.Engine(**kwargs)
    started = time.time() - t0
    try:
        out = engine.generate(
            input_ids=spec["prompt"],
            sampling_params=dict(
                temperature=0.0, max_new_tokens=spec["steps"], ignore_eos=True,
                custom_params=dict(steps=spec["steps"], dump=args.dump, forced=spec["tokens"]),
            ),
            custom_logit_processor=ForceAndRecord.to_str(),
        )
        took = time.time() - t0 - started
    finally:
        engine.shutdown()
    got = out["output_ids"]
    if got != spec["tokens"]:
        raise RuntimeError(f"{args.engine}: forced tokens not followed (first 10: {got[:10]})")
    Path(args.dump + ".json").write_text(json.dumps({"startup_s": started, "generate_s": took}))


def compare(ref: torch.Tensor, test: torch.Tensor, topk: int) -> dict:
    """Per-step max |dlogprob| over the reference's top-k tokens and argmax agreement."""
    ref_lp, test_lp = torch.log_softmax(ref, -1), torch.log_softmax(test, -1)
    idx = ref_lp.topk(topk, dim=-1).indices
    dmax = (test_lp.gather(-1, idx) - ref_lp.gather(-1, idx)).abs().amax(-1)
    agree = test_lp.argmax(-1) == ref_lp.argmax(-1)
    disagree = (~agree).nonzero().flatten().tolist()
    return {
        "max_dlogprob": float(dmax.max()), "mean_dlogprob": float(dmax.mean()),
        "step_of_max": int(dmax.argmax()),
        "last_100_mean_dlogprob": float(dmax[-100:].mean()),
        "argmax_agree_steps": int(agree.sum()), "first_disagreement": disagree[0] if disagree else None,
        "per_step_max_dlogprob": [round(float(x), 6) for x in dmax],
        "per_step_argmax_agree": [bool(x) for x in agree],
    }


def spawn_engine(name: str, spec_path: Path, dump: Path, args, cuda_graph: bool) -> dict:
    env = {**os.environ, "SGLANG_RDNA4": ENGINES[name][2]}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name, "--spec", str(spec_path),
           "--dump", str(dump), "--device", args.device, "--mem-fraction", str(args.mem_fraction),
           "--port", str(args.port)]
    if cuda_graph:
        cmd.append("--cuda-graph")
    t0 = time.time()
    try:
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=args.engine_timeout)
        rc, err = proc.returncode, proc.stderr or proc.stdout
    except subprocess.TimeoutExpired as exc:
        rc, err = "timeout", (exc.stderr or b"").decode(errors="replace") if isinstance(exc.stderr, bytes) else str(exc.stderr)
    info = {"wall_s": round(time.time() - t0, 1), "rc": rc, "cuda_graph": cuda_graph}
    sys.stdout.write(f"--- {name} (rc {rc}, {info['wall_s']} s)\n{err[-3000:]}\n")
    sys.stdout.flush()
    if rc != 0 or not dump.exists():
        info["error"] = err[-4000:]
    else:
        info.update(json.loads(Path(str(dump) + ".json").read_text()))
    return info


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="deep_model_backends.json")
    p.add_argument("--device", default="cuda")
    p.add_argument("--layers", type=int, default=60)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--window", type=int, default=64)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--topk", type=int, default=10)
    p.add_argument("--engines", default=",".join(ENGINES))
    p.add_argument("--cuda-graph", action="store_true", help="capture CUDA graphs (bs 1)")
    # high on purpose: the KV pool is capped at 4096 tokens anyway, and the fraction must leave
    # a positive pool when another process (a benchmark) already holds most of the GPU
    p.add_argument("--mem-fraction", type=float, default=0.9)
    p.add_argument("--port", type=int, default=30000)
    p.add_argument("--no-fail-fast", dest="fail_fast", action="store_false")
    p.add_argument("--engine-timeout", type=float, default=240.0)
    p.add_argument("--worker"), p.add_argument("--spec"), p.add_argument("--dump")
    args = p.parse_args()
    if args.worker:
        args.engine = args.worker
        return run_engine(args)

    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        raise SystemExit(f"unknown engines {sorted(unknown)}; choose from {list(ENGINES)}")
    work = Path(tempfile.mkdtemp(prefix="deep_backends_"))
    model_dir = build_gemma3(work / "model", args.layers, args.window, args.head_dim, args.kv_heads)
    from transformers import AutoTokenizer

    prompt = AutoTokenizer.from_pretrained(model_dir)(PROMPT)["input_ids"]
    t0 = time.time()
    tokens, ref = hf_decode(model_dir, prompt, args.steps, torch.float32, args.device)
    ref_s = time.time() - t0
    hf_bf16 = hf_forced_rows(model_dir, prompt, tokens, torch.bfloat16, args.device)
    spec_path = work / "spec.json"
    spec_path.write_text(json.dumps({"model_dir": str(model_dir), "prompt": prompt,
                                     "tokens": tokens, "steps": args.steps}))
    print(f"reference done in {time.time() - t0:.0f} s", flush=True)
    results = {"hf_bf16": compare(ref, hf_bf16, args.topk)}
    tol = 2.0 * results["hf_bf16"]["max_dlogprob"]
    report = {
        "device": torch.cuda.get_device_name(0) if args.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "config": {"layers": args.layers, "steps": args.steps, "window": args.window,
                   "head_dim": args.head_dim, "kv_heads": args.kv_heads, "q_heads": 4, "hidden": 256,
                   "pattern": "5 sliding : 1 full", "final_logit_softcapping": 30.0,
                   "prompt_tokens": len(prompt), "vocab": int(ref.shape[-1])},
        "reference": "HF transformers float32, eager attention, tokens sampled (T=1, seed 0)",
        "reference_s": round(ref_s, 1),
        "distinct_tokens": len(set(tokens)),
        "topk": args.topk,
        "tolerance": {"max_dlogprob": tol, "rule": "2x the max over steps of hf_bf16"},
        "results": results,
    }
    results["hf_bf16"]["pass"] = True
    for name in engines:  # the JSON is rewritten after each engine, so a cut-off run keeps its rows
        dump = work / f"{name}.pt"
        run = spawn_engine(name, spec_path, dump, args, args.cuda_graph)
        if "error" in run and args.cuda_graph:  # one retry without graphs
            failed = run
            run = spawn_engine(name, spec_path, dump, args, False)
            run["cuda_graph_error"] = failed["error"][-1500:]
        if "error" in run:
            results[name] = {"pass": False, "run": run}
        else:
            res = compare(ref, torch.load(dump), args.topk)
            res["pass"] = bool(res["max_dlogprob"] <= tol)
            res["run"] = run
            results[name] = res
        Path(args.out).write_text(json.dumps(report, indent=1))
        if "error" in run and args.fail_fast and name == engines[0]:
            print("first engine failed: skipping the rest (--no-fail-fast to try them)")
            break
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"{'engine':24} {'max':>8} {'mean':>8} {'agree':>7} {'1st dis':>7} pass")
    for name, res in results.items():
        if "max_dlogprob" not in res:
            print(f"{name:24} FAILED: {res['run'].get('error', '')[-300:]}")
            continue
        print(f"{name:24} {res['max_dlogprob']:8.4f} {res['mean_dlogprob']:8.4f} "
              f"{res['argmax_agree_steps']:4d}/{args.steps} {str(res['first_disagreement']):>7} {res['pass']}")
    print(f"tolerance {tol:.4f}; distinct tokens {report['distinct_tokens']}; json {args.out}")


if __name__ == "__main__":
    main()

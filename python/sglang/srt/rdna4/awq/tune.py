"""Crossovers of the AWQ kernels timed on this device at load (opt-in: SGLANG_RDNA4_AWQ_TUNE=1).

The default plan (dispatch.py) uses crossovers measured on an H100; an RDNA4 card has other
bandwidth, compute and launch costs. With tuning on, each layer shape is timed when its plan
is built: every candidate kernel at M = 1, 2, 4, ..., 256 (a kernel only where it can win,
CANDIDATE_MAX_M), on random weights of the layer's shape, by replaying a CUDA/HIP graph of
one call (eager timing where capture fails). The fastest kernel at a sampled M serves the M
from the previous sample + 1 up to it; beyond the last sample, dequantize + matmul.

Cache: one JSON file per device and software stack,
``~/.cache/sglang-rdna4/awq_tune/<device>__torch-<version>__triton-<version>.json``
(directory: SGLANG_RDNA4_AWQ_TUNE_DIR), an entry per layer shape and dtype with the timings
and the spans chosen. An entry is reused while the candidate set is the same. A cache that
does not parse, or whose spans do not follow from its own timings, stops the load with an
error naming the file (delete it to measure again): it is only ever written whole (temporary
file + rename, under a file lock), so a bad one was edited or written by something else,
and re-measuring silently would hide that.

Tensor parallelism: the first rank of SGLang's TP group measures (or reads its cache) and
broadcasts the spans to the other ranks over the group's CPU (gloo) group; they neither time
nor read a cache, so every rank runs the same plan. Plans are built in load order, which is
the same on every TP rank. Outside SGLang (torch.distributed initialized, no TP group) the
world group does the same. Tuning happens only at load: a plan first built during a call
(a layer without one) would broadcast from inside the forward pass.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

TUNE_ENV = "SGLANG_RDNA4_AWQ_TUNE"
TUNE_DIR_ENV = "SGLANG_RDNA4_AWQ_TUNE_DIR"
CACHE_VERSION = 1
SAMPLE_MS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
# The largest sampled M each kernel is timed at: past these it loses by a wide margin on
# every device measured so far (benchmarks/awq), and timing it would only cost start-up.
CANDIDATE_MAX_M = {"gemv": 8, "hip_gemv": 1, "gemm": 32, "upstream_fused": 64, "gemm_tc": 256,
                   "dequant_matmul": sys.maxsize}

# timer(kernel name, M, run) -> seconds per call of run(); injectable for tests.
Timer = Callable[[str, int, Callable[[], object]], float]


def enabled() -> bool:
    raw = os.environ.get(TUNE_ENV, "0").strip().lower()
    if raw in ("", "0", "false", "off"):
        return False
    if raw in ("1", "true", "on"):
        return True
    raise ValueError(f"{TUNE_ENV}={raw!r}: use 1 to time the AWQ crossovers at load, or 0")


def default_cache_dir() -> Path:
    return Path.home() / ".cache" / "sglang-rdna4" / "awq_tune"


def cache_dir() -> Path:
    raw = os.environ.get(TUNE_DIR_ENV, "").strip()
    return Path(raw).expanduser() if raw else default_cache_dir()


@dataclass(frozen=True)
class TuneRequest:
    """One layer shape to tune: its kernels (beyond M = 1), the GEMVs tried at M = 1, and
    the kernel of every M past the last sample."""

    k: int
    n: int
    g: int
    dtype: torch.dtype
    device: torch.device
    kernels: tuple[str, ...]
    m1_gemv: tuple[str, ...]
    open_kernel: str
    cache_dir: str
    dequantizer: str

    @property
    def key(self) -> str:
        return f"K={self.k} N={self.n} G={self.g} {str(self.dtype).replace('torch.', '')}"

    def candidates(self) -> dict[int, list[str]]:
        out = {}
        for m in SAMPLE_MS:
            names = list(self.m1_gemv) if m == 1 else []
            names += [k for k in self.kernels
                      if not (k == "gemv" and m == 1) and m <= CANDIDATE_MAX_M.get(k, sys.maxsize)]
            out[m] = names
        return out


@dataclass(frozen=True)
class Broadcaster:
    """Shares the source rank's result: the source calls share(result), the others
    share(None); all get the source's result."""

    is_source: bool
    share: Callable[[object], object]


def pick_spans(timings: Mapping[int, Mapping[str, float]], open_kernel: str) -> tuple[tuple[int, str], ...]:
    """(largest M, kernel) spans, ascending, from {sampled M: {kernel: seconds}}: the fastest
    at a sample serves the M after the previous sample up to it (ties: the first listed);
    the last span (sys.maxsize) runs ``open_kernel``."""
    spans: list[list] = []
    for m in sorted(timings):
        row = timings[m]
        if not row:
            raise ValueError(f"AWQ tune: no kernel timed at M={m}")
        best = min(row, key=lambda name: row[name])
        if spans and spans[-1][1] == best:
            spans[-1][0] = m
        else:
            spans.append([m, best])
    if spans and spans[-1][1] == open_kernel:
        spans.pop()
    spans.append([sys.maxsize, open_kernel])
    return tuple((hi, name) for hi, name in spans)


def device_tag(device: torch.device) -> str:
    if device.type != "cuda":
        return f"{device.type}-interpreter"
    idx = device.index if device.index is not None else torch.cuda.current_device()
    props = torch.cuda.get_device_properties(idx)
    arch = getattr(props, "gcnArchName", "") if torch.version.hip is not None else ""
    return f"{props.name} {arch}".strip()


def cache_file(directory: str | Path, device: str) -> Path:
    import triton

    slug = re.sub(r"[^A-Za-z0-9.+-]+", "_", device).strip("_") or "device"
    return Path(directory) / f"{slug}__torch-{torch.__version__}__triton-{triton.__version__}.json"


def _corrupt(path: Path, why: str) -> RuntimeError:
    return RuntimeError(
        f"AWQ tune cache {path} is corrupt ({why}): delete it to time the kernels again, "
        f"or unset {TUNE_ENV}"
    )


def _entry_spans(entry: Mapping, path: Path, key: str) -> tuple[tuple[int, str], ...]:
    """The spans of a cache entry, checked against its own timings."""
    try:
        timings = {int(m): {str(k): float(v) for k, v in row.items()} for m, row in entry["timings_us"].items()}
        stored = tuple((sys.maxsize if hi is None else int(hi), str(name)) for hi, name in entry["spans"])
        open_kernel = str(entry["open_kernel"])
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise _corrupt(path, f"entry {key!r}: {e!r}") from e
    if stored != pick_spans(timings, open_kernel):
        raise _corrupt(path, f"entry {key!r}: its spans do not follow from its timings")
    return stored


def load_cache(path: Path) -> dict:
    if not path.exists():
        return {"version": CACHE_VERSION, "shapes": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _corrupt(path, repr(e)) from e
    if not isinstance(data, dict) or data.get("version") != CACHE_VERSION or not isinstance(data.get("shapes"), dict):
        raise _corrupt(path, f"expected {{'version': {CACHE_VERSION}, 'shapes': {{...}}}}")
    for key, entry in data["shapes"].items():
        if not isinstance(entry, dict):
            raise _corrupt(path, f"entry {key!r} is not an object")
        _entry_spans(entry, path, key)
    return data


def save_cache(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as f:
        try:
            import fcntl

            fcntl.flock(f, fcntl.LOCK_EX)
        except ImportError:  # not POSIX: no lock (one process per cache file then)
            pass
        yield


def make_timer(device: torch.device, iters: int = 20) -> Timer:
    """Seconds per call: a CUDA/HIP graph of one call replayed ``iters`` times (best of 3),
    after two eager calls (Triton compiles in the first); eager calls where capture fails,
    and wall-clock time on CPU."""

    def gpu(kernel: str, m: int, run: Callable[[], object]) -> float:
        run()
        run()
        torch.cuda.synchronize(device)
        step = run
        try:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph):
                run()
            step = graph.replay
        except Exception as e:  # noqa: BLE001 - any capture failure: time eager calls instead
            logger.info("AWQ tune: %s at M=%d does not capture in a graph (%r); timing eager calls", kernel, m, e)
        best = math.inf
        for _ in range(3):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                step()
            end.record()
            end.synchronize()
            best = min(best, start.elapsed_time(end) / 1e3 / iters)
        return best

    def cpu(kernel: str, m: int, run: Callable[[], object]) -> float:
        run()
        best = math.inf
        for _ in range(3):
            t0 = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - t0)
        return best

    return gpu if device.type == "cuda" else cpu


def _random_layer(req: TuneRequest) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """x [max M, K] and packed weights of the layer's shape (values do not change timings)."""
    dev, k, n8, groups = req.device, req.k, req.n // 8, req.k // req.g
    gen = torch.Generator(device=dev).manual_seed(0)
    words = lambda rows: torch.randint(-(2**31), 2**31 - 1, (rows, n8), generator=gen, device=dev,
                                       dtype=torch.int32)
    scales = (torch.rand((groups, req.n), generator=gen, device=dev) * 0.01 + 1e-3).to(req.dtype)
    x = torch.randn((max(SAMPLE_MS), k), generator=gen, device=dev).to(req.dtype)
    return x, words(k), scales, words(groups)


def time_runs(key: str, candidates: Mapping[int, Sequence[str]], timer: Timer,
              run_of: Callable[[str, int], Callable[[], object]]) -> dict[int, dict[str, float]]:
    """{M: {kernel: seconds}}: ``timer`` over ``run_of(kernel, M)`` for every candidate."""
    timings: dict[int, dict[str, float]] = {}
    for m, names in candidates.items():
        row = {}
        for name in names:
            t = float(timer(name, m, run_of(name, m)))
            if not math.isfinite(t) or t <= 0:
                raise RuntimeError(f"AWQ tune {key}: timer returned {t!r} for {name} at M={m}")
            row[name] = t
        timings[m] = row
    return timings


def measure(req: TuneRequest, bind: Callable[[str, int], Callable], timer: Timer,
            candidates: Mapping[int, Sequence[str]]) -> dict[int, dict[str, float]]:
    """{M: {kernel: seconds}} for every sampled M and candidate of a linear layer, each kernel
    bound exactly as a plan would bind it (``bind(kernel, M)``), on random weights."""
    x, qweight, scales, qzeros = _random_layer(req)

    def run_of(name: str, m: int) -> Callable[[], object]:
        call, xm = bind(name, m), x[:m]
        return lambda: call(xm, qweight, scales, qzeros)

    return time_runs(req.key, candidates, timer, run_of)


Measure = Callable[..., dict]  # (req, bind, timer, candidates) -> {M: {kernel: seconds}}


def _measure_or_read(req: TuneRequest, bind: Callable[[str, int], Callable], timer: Timer,
                     measure_fn: Measure = measure) -> tuple:
    path = cache_file(req.cache_dir, device_tag(req.device))
    cands = req.candidates()
    stored_cands = {str(m): list(c) for m, c in cands.items()}
    with _locked(path):
        cache = load_cache(path)
        entry = cache["shapes"].get(req.key)
        if (entry is not None and entry.get("candidates") == stored_cands
                and entry.get("open_kernel") == req.open_kernel and entry.get("dequantizer") == req.dequantizer):
            spans = _entry_spans(entry, path, req.key)
            logger.info("AWQ tune %s: crossovers read from %s", req.key, path)
            return spans
        # Microseconds, rounded as stored, so the spans follow from what the cache holds.
        timings = {m: {k: round(v * 1e6, 3) for k, v in row.items()}
                   for m, row in measure_fn(req, bind, timer, cands).items()}
        stored = pick_spans(timings, req.open_kernel)
        cache["shapes"][req.key] = {
            "candidates": stored_cands,
            "open_kernel": req.open_kernel,
            "dequantizer": req.dequantizer,
            "timings_us": {str(m): row for m, row in timings.items()},
            "spans": [[None if hi == sys.maxsize else hi, name] for hi, name in stored],
        }
        save_cache(path, cache)
        logger.info("AWQ tune %s: timed on %s, spans %s; written to %s", req.key, device_tag(req.device),
                    [(str(hi) if hi != sys.maxsize else "+", n) for hi, n in stored], path)
        return stored


def default_broadcaster() -> Broadcaster | None:
    """SGLang's TP group (its CPU group), else the world group; None in a single process."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    group, src, rank, size = None, 0, dist.get_rank(), dist.get_world_size()
    try:
        from sglang.srt.distributed.parallel_state import get_tp_group

        tp = get_tp_group()
        group, src, rank, size = tp.cpu_group, tp.ranks[0], dist.get_rank(), tp.world_size
    except Exception as e:  # noqa: BLE001 - not inside SGLang's runtime: the world group
        logger.info("AWQ tune: no SGLang TP group (%r); sharing crossovers over the world group", e)
    if size == 1:
        return None

    def share(obj: object) -> object:
        box = [obj]
        dist.broadcast_object_list(box, src=src, group=group)
        return box[0]

    return Broadcaster(is_source=rank == src, share=share)


def tuned_spans(req: TuneRequest, binder, timer: Timer | None = None,
                broadcaster: Broadcaster | None = None,
                measure_fn: Measure = measure) -> tuple[tuple[int, str], ...]:
    """The (largest M, kernel) spans of one layer shape, timed on this device or read from
    its cache, and the same on every TP rank. ``req`` is a TuneRequest or anything with its
    key, candidates(), open_kernel, dequantizer, cache_dir and device (moe_plan.py's), and
    ``measure_fn`` times its candidates (default: a linear layer of random weights)."""
    broadcaster = broadcaster if broadcaster is not None else default_broadcaster()
    if broadcaster is not None and not broadcaster.is_source:
        status, value = broadcaster.share(None)
        if status != "ok":
            raise RuntimeError(f"AWQ tune {req.key}: failed on the rank that measures: {value}")
        return tuple((int(hi), str(name)) for hi, name in value)
    try:
        spans = _measure_or_read(req, binder.bind, timer or make_timer(req.device), measure_fn)
    except Exception as e:
        if broadcaster is not None:
            broadcaster.share(("error", f"{type(e).__name__}: {e}"))
        raise
    if broadcaster is not None:
        broadcaster.share(("ok", spans))
    return spans

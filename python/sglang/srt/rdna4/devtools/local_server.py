"""`python -m sglang.launch_server` as a subprocess on a free loopback port, and its clients."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests

# The server binds its HTTP port last, after model load; by then its own sockets (gloo pairs,
# ZMQ, torch.distributed) have taken ephemeral ports, and one may be the port picked here.
# So ports come from below the kernel's ephemeral range, checked together with the block the
# server derives from them (port + 233 .. port + 240 for TP/DP init, see server_args.py).
_DERIVED_PORT_OFFSETS = (0, *range(233, 241))
_BIND_CONFLICT = "address already in use"
START_ATTEMPTS = 3
# /health generates one token and answers once the scheduler replies (upstream waits up to
# SGLANG_HEALTH_CHECK_TIMEOUT, 20 s). Its poll must outwait that: under the Triton interpreter a
# one-token step takes seconds, and a poll that gives up first queues another step each second.
# It is asked only once /model_info (no generation) answers from our process, so a long wait
# never hangs on a port some other process holds.
HEALTH_POLL_TIMEOUT = 30.0


def _ephemeral_range() -> tuple[int, int]:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(low), int(high)
    except (OSError, ValueError):
        return 32768, 60999  # Linux default


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _port_window() -> tuple[int, int]:
    """[lo, hi) for a port whose derived block stays clear of the ephemeral range."""
    span = max(_DERIVED_PORT_OFFSETS) + 1
    low, _ = _ephemeral_range()
    if low - span > 11000:
        return 10000, low - span
    return 1024, 65536 - span  # little room below the ephemeral range: rely on the retry


def free_port(rng: random.Random | None = None) -> int:
    """A loopback port outside the ephemeral range whose derived server ports are free too."""
    rng = rng or random.SystemRandom()
    lo, hi = _port_window()
    for _ in range(200):
        port = rng.randrange(lo, hi)
        if all(_bindable(port + off) for off in _DERIVED_PORT_OFFSETS):
            return port
    raise RuntimeError(f"no free loopback port block in [{lo}, {hi}) after 200 tries")


# Clients name the model "tiny" (the server answers 404 for a model it does not serve).
CPU_SERVER_ARGS = [
    "--served-model-name", "tiny",
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
# One GPU (ROCm or CUDA) with the RDNA4 paths forced on: the Triton backend and our kernels.
GPU_SERVER_ARGS = [
    "--served-model-name", "tiny",
    "--attention-backend", "triton",
    "--dtype", "float32",
    "--max-total-tokens", "8192",
    "--max-running-requests", "8",
    "--mem-fraction-static", "0.3",
    "--disable-cuda-graph",
    "--disable-piecewise-cuda-graph",
    "--sampling-backend", "pytorch",
    "--skip-server-warmup",
]
GPU_SERVER_ENV = {"SGLANG_RDNA4": "1"}


class ServerStartError(RuntimeError):
    """The server process exited before it became healthy."""

    def __init__(self, message: str, port_conflict: bool):
        super().__init__(message)
        self.port_conflict = port_conflict


@dataclass(frozen=True)
class ChatReply:
    text: str
    logprobs: list[dict]  # OpenAI `logprobs.content` entries: token, logprob, top_logprobs
    usage: dict


def _ok(res: requests.Response) -> requests.Response:
    """res, or an HTTPError carrying the server's error body (not stripped by python -O)."""
    if res.status_code != 200:
        raise requests.HTTPError(f"{res.request.method} {res.url}: {res.status_code} {res.text}",
                                 response=res)
    return res


class Server:
    """`python -m sglang.launch_server` as a subprocess on a free loopback port."""

    launch: tuple[str, ...] = ("-m", "sglang.launch_server")

    def __init__(self, model_dir: Path, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 300.0,
                 log_path: Path | None = None, gpu: bool = False,
                 base_args: list[str] | None = None):
        """`base_args` replaces the test defaults (CPU_SERVER_ARGS / GPU_SERVER_ARGS), e.g. for
        benchmarks that must not cap tokens or turn CUDA graphs off."""
        self.model_dir = Path(model_dir)
        if base_args is None:
            base_args = GPU_SERVER_ARGS if gpu else CPU_SERVER_ARGS
        self.server_args = [*base_args, *(extra_args or [])]
        self._choose_port()
        self.env = {**os.environ, **(GPU_SERVER_ENV if gpu else CPU_SERVER_ENV), **(env or {})}
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else self.model_dir / "server.log"
        self.proc: subprocess.Popen | None = None

    def _choose_port(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable, *self.launch,
            "--model-path", str(self.model_dir),
            "--host", "127.0.0.1", "--port", str(self.port), *self.server_args,
        ]

    def __enter__(self) -> Server:
        for attempt in range(1, START_ATTEMPTS + 1):
            try:
                return self._start()
            except ServerStartError as err:
                if not err.port_conflict or attempt == START_ATTEMPTS:
                    raise
                self._choose_port()  # another process took a port between our check and the bind
        raise AssertionError("unreachable")

    def _start(self) -> Server:
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            self.args, stdout=self._log, stderr=subprocess.STDOUT, env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._kill_group(signal.SIGKILL)  # ranks the launcher may have left behind
                self._log.close()
                tail = self.log_tail()
                raise ServerStartError(f"server exited with {self.proc.returncode}:\n{tail}",
                                       port_conflict=_BIND_CONFLICT in tail.lower())
            try:
                if requests.get(f"{self.url}/model_info", timeout=2).status_code == 200:
                    poll = min(HEALTH_POLL_TIMEOUT, max(deadline - time.monotonic(), 1.0))
                    if requests.get(f"{self.url}/health", timeout=poll).status_code == 200:
                        return self
            except requests.RequestException:
                pass
            time.sleep(1.0)
        self.__exit__(None, None, None)
        raise TimeoutError(f"server not healthy after {self.startup_timeout}s:\n{self.log_tail()}")

    def _kill_group(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self._kill_group(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self._kill_group(signal.SIGKILL)
                self.proc.wait(timeout=30)
        self._log.close()

    def log_tail(self, chars: int = 6000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "<no log>"

    def generate(self, input_ids: list[int], max_new_tokens: int) -> list[int]:
        """Greedy token ids from the native /generate endpoint (EOS ignored)."""
        return self.greedy(max_new_tokens, input_ids=input_ids)[0]

    def greedy(self, max_new_tokens: int, **prompt) -> tuple[list[int], list[float]]:
        """(token ids, their logprobs) of a greedy /generate, EOS ignored. `prompt` is the
        request's input: input_ids=[...] or text="...", plus e.g. image_data=[...]."""
        body = {
            **prompt,
            "sampling_params": {"temperature": 0, "max_new_tokens": max_new_tokens, "ignore_eos": True},
            "return_logprob": True,
            "logprob_start_len": -1,
        }
        res = _ok(requests.post(f"{self.url}/generate", json=body, timeout=300))
        pairs = res.json()["meta_info"]["output_token_logprobs"]
        return [int(p[1]) for p in pairs], [float(p[0]) for p in pairs]

    def chat(self, messages: list[dict], max_tokens: int, stream: bool = False,
             **extra) -> ChatReply:
        """A greedy /v1/chat/completions (EOS ignored, logprobs on), streamed or not."""
        body = {"model": "tiny", "messages": messages, "max_tokens": max_tokens, "temperature": 0,
                "ignore_eos": True, "logprobs": True, "stream": stream, **extra}
        if stream:
            body["stream_options"] = {"include_usage": True}
        res = _ok(self.post("/v1/chat/completions", body, stream=stream))
        if not stream:
            choice = res.json()["choices"][0]
            return ChatReply(choice["message"]["content"], choice["logprobs"]["content"],
                             res.json()["usage"])
        events = list(sse_events(res))
        deltas = [e["choices"][0] for e in events if e["choices"]]
        return ChatReply("".join(d["delta"].get("content") or "" for d in deltas),
                         [p for d in deltas for p in ((d.get("logprobs") or {}).get("content") or [])],
                         next(e["usage"] for e in events if e.get("usage")))

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

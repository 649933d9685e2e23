"""`python -m sglang.launch_server` as a subprocess on a free loopback port, and its clients."""

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
# One GPU (ROCm or CUDA) with the RDNA4 paths forced on: the Triton backend and our kernels.
GPU_SERVER_ARGS = [
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


class Server:
    """`python -m sglang.launch_server` as a subprocess on a free loopback port."""

    def __init__(self, model_dir: Path, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, startup_timeout: float = 300.0,
                 log_path: Path | None = None, gpu: bool = False):
        self.model_dir = Path(model_dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [
            sys.executable, "-m", "sglang.launch_server",
            "--model-path", str(self.model_dir),
            "--host", "127.0.0.1", "--port", str(self.port),
            *(GPU_SERVER_ARGS if gpu else CPU_SERVER_ARGS), *(extra_args or []),
        ]
        self.env = {**os.environ, **(GPU_SERVER_ENV if gpu else CPU_SERVER_ENV), **(env or {})}
        self.startup_timeout = startup_timeout
        self.log_path = Path(log_path) if log_path else self.model_dir / "server.log"
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

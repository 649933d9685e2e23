"""Issue #17 on the real releases: a rebase of our delta onto sglang 0.5.11 (the wheel the
cherry-picks already pin, so nothing new is fetched) in a scratch root, never in this checkout."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

from tests.sync.synthetic import REPO_ROOT, TOOL

AWQ = "python/sglang/srt/layers/quantization/awq.py"
MOVED = ("srt/layers/quantization/awq.py", "srt/layers/moe/fused_moe_triton/fused_moe.py")


def _sync(root, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), "--root", str(root), *args],
                          capture_output=True, text=True)


def _files(root, rel: str) -> dict[str, bytes]:
    top = root / rel
    if top.is_file():
        return {rel: top.read_bytes()}
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def test_rebase_to_0_5_11_is_guarded_and_abort_restores_the_moved_diffs(tmp_path):
    root = tmp_path / "scratch"
    root.mkdir()
    shutil.copy2(REPO_ROOT / "upstream.lock", root / "upstream.lock")
    shutil.copytree(REPO_ROOT / "patches", root / "patches")
    ours = {**_files(root, "patches"), **_files(root, "upstream.lock")}
    proc = _sync(root, "materialize")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    laid_out_awq = (root / AWQ).read_bytes()
    assert b"sglang.srt.rdna4.awq.dispatch" in laid_out_awq

    proc = _sync(root, "rebase", "--to", "0.5.11")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    for rel in MOVED:
        assert f"python/sglang/{rel}: upstream moved the file" in out
    # 0.5.11's hf_transformers_utils.py is a 17-line shim: a port, not one conflict over 1,354 lines
    assert "hf_transformers_utils.py: upstream rewrote the file" in out
    assert "<<<<<<<" not in (root / "python/sglang/srt/utils/hf_transformers_utils.py").read_text()

    # A: what `pip install -e python` runs refuses and leaves the merge in place
    merged = (root / "python/sglang/srt/layers/attention/triton_backend.py").read_bytes()
    proc = _sync(root, "materialize")
    assert proc.returncode == 2 and "rebase 0.5.10 -> 0.5.11 is in progress" in proc.stderr
    assert (root / "python/sglang/srt/layers/attention/triton_backend.py").read_bytes() == merged
    proc = _sync(root, "status", "--json")
    todo = {t["file"] for t in json.loads(proc.stdout)["rebase"]["todo"]}
    assert proc.returncode == 1 and "python/sglang/srt/layers/attention/triton_backend.py" in todo

    # B: delete the moved files' diffs as --continue asks, then abort
    for rel in MOVED:
        (root / "patches/python/sglang" / (rel + ".diff")).unlink()
    proc = _sync(root, "rebase", "--abort")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {**_files(root, "patches"), **_files(root, "upstream.lock")} == ours
    assert (root / AWQ).read_bytes() == laid_out_awq, "the RDNA4 AWQ dispatch is back"
    empty = [p for p in (root / "python/sglang").rglob("*") if p.is_dir() and not any(p.iterdir())]
    assert empty == []
    proc = _sync(root, "status", "--json")
    assert proc.returncode == 0 and json.loads(proc.stdout)["clean"], proc.stdout + proc.stderr

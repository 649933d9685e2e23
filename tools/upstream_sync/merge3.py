"""Three-way merge of one file through `git merge-file` (conflict markers like git's)."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from upstream_sync import SyncError

CONFLICT_MARKERS = ("<<<<<<< ", "||||||| ", ">>>>>>> ")


def merge3(ours: str, base: str, theirs: str, label: str) -> tuple[str, int]:
    """(merged text, number of conflicts); conflicts are left inline with diff3 markers."""
    with tempfile.TemporaryDirectory(prefix="sync-merge-") as tmp:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_bytes(text.encode("utf-8"))
            paths.append(str(path))
        cmd = ["git", "merge-file", "-p", "--diff3",
               "-L", f"ours (sglang-rdna4) {label}", "-L", "base (old upstream)",
               "-L", "theirs (new upstream)", *paths]
        try:
            proc = subprocess.run(cmd, capture_output=True)
        except FileNotFoundError as err:
            raise SyncError("git is needed for three-way merges; install git") from err
    if proc.returncode < 0 or proc.returncode > 127:
        raise SyncError(f"git merge-file failed on {label}: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode("utf-8"), proc.returncode


def conflict_lines(text: str) -> list[int]:
    """1-based line numbers that still hold conflict markers."""
    out = []
    for n, line in enumerate(text.split("\n"), start=1):
        if line.startswith(CONFLICT_MARKERS) or line == "=======":
            out.append(n)
    return out

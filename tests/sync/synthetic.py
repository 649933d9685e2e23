"""Tiny synthetic "upstream releases" (real wheels) and a git repo that pins one."""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOL = REPO_ROOT / "tools" / "sync_upstream.py"
DIST = "fakeup"

RELEASE_1 = {
    "__init__.py": "VERSION = '1.0'\n",
    "core.py": textwrap.dedent(
        """\
        def greet(name):
            return "hello " + name


        def add(a, b):
            return a + b


        def mul(a, b):
            return a * b
        """
    ),
    "srt/engine.py": "".join(f"LINE_{i} = {i}\n" for i in range(40)),
    "srt/configs/table.json": '{"a": 1}\n',
    "bin/run.sh": "#!/bin/sh\necho run\n",
}


def build_wheel(out_dir: Path, version: str, files: dict[str, str]) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{DIST}-{version}-py3-none-any.whl"
    path = out_dir / name
    dist_info = f"{DIST}-{version}.dist-info"
    entries = {f"{DIST}/{rel}": data.encode() for rel, data in files.items()}
    entries[f"{dist_info}/METADATA"] = (
        f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n".encode()
    )
    entries[f"{dist_info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = []
    for arc, data in entries.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{arc},sha256={digest},{len(data)}")
    record.append(f"{dist_info}/RECORD,,")
    entries[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    with zipfile.ZipFile(path, "w") as zf:
        for arc, data in entries.items():
            info = zipfile.ZipInfo(arc, date_time=(2026, 1, 1, 0, 0, 0))
            info.external_attr = (0o755 if arc.endswith(".sh") else 0o644) << 16
            zf.writestr(info, data)
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def lock_text(version: str, wheel: Path, extra: str = "") -> str:
    return textwrap.dedent(
        f"""\
        [base]
        distribution = "{DIST}"
        version = "{version}"
        package = "{DIST}"
        wheel = "{wheel.name}"
        sha256 = "{sha256(wheel)}"
        """
    ) + extra


@dataclass
class Fixture:
    root: Path
    wheels: Path
    cache: Path

    @property
    def pkg(self) -> Path:
        return self.root / "python" / DIST

    def env(self) -> dict[str, str]:
        return {**os.environ, "SGLANG_RDNA4_CACHE": str(self.cache),
                "SGLANG_RDNA4_FIND_LINKS": str(self.wheels)}

    def sync(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, str(TOOL), "--root", str(self.root), *args],
            capture_output=True, text=True, env=self.env(),
        )

    def git(self, *args: str) -> str:
        proc = subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, check=True)
        return proc.stdout

    def write_patch(self, rel: str, body: str, reason: str = "test change", status: str = "carry") -> Path:
        path = self.root / "patches" / "python" / DIST / (rel + ".diff")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"# reason: {reason}\n# upstream: {status}\n{body}")
        return path


def make_repo(tmp: Path) -> Fixture:
    wheels = tmp / "index"
    wheel = build_wheel(wheels, "1.0", RELEASE_1)
    root = tmp / "repo"
    root.mkdir()
    fx = Fixture(root=root, wheels=wheels, cache=tmp / "cache")
    (root / "upstream.lock").write_text(lock_text("1.0", wheel))
    ours = fx.pkg / "srt" / "ours.py"
    ours.parent.mkdir(parents=True)
    ours.write_text("from fakeup.core import add\n\n\ndef twice(x):\n    return add(x, x)\n")
    fx.git("init", "-q")
    fx.git("config", "user.email", "t@example.invalid")
    fx.git("config", "user.name", "t")
    fx.git("add", "-A")
    fx.git("commit", "-qm", "init")
    return fx


UTIL = "def helper():\n    return 1\n"
MOVER = "".join(f"def step_{i}():\n    return {i}\n\n\n" for i in range(6))

RELEASE_1_FULL = {**RELEASE_1, "util.py": UTIL, "legacy/mover.py": MOVER}

RELEASE_2 = {
    **{k: v for k, v in RELEASE_1.items()},
    "__init__.py": "VERSION = '1.0'\nFEATURE = True\n",
    "core.py": RELEASE_1["core.py"].replace("return a * b", "return b * a  # 2.0"),
    "srt/engine.py": RELEASE_1["srt/engine.py"].replace("LINE_5 = 5", "LINE_5 = 'five'"),
    "newplace/mover.py": MOVER,
    "srt/model_x.py": "class ModelX:\n    pass\n",
}

def _our_diff(rel: str, old: str, new: str) -> str:
    sys.path.insert(0, str(REPO_ROOT / "tools"))
    from upstream_sync.udiff import make_diff

    return make_diff(old, new, f"python/{DIST}/{rel}")


OUR_PATCHES = {
    # merges cleanly with 2.0's change to mul
    "core.py": _our_diff("core.py", RELEASE_1["core.py"],
                         RELEASE_1["core.py"].replace('"hello "', '"hi "')),
    # conflicts with 2.0's change of the same line
    "srt/engine.py": _our_diff("srt/engine.py", RELEASE_1["srt/engine.py"],
                               RELEASE_1["srt/engine.py"].replace("LINE_5 = 5", "LINE_5 = 50")),
    # 2.0 ships the same change
    "__init__.py": _our_diff("__init__.py", RELEASE_1["__init__.py"], RELEASE_2["__init__.py"]),
    # 2.0 deletes the file
    "util.py": _our_diff("util.py", UTIL, UTIL.replace("return 1", "return 2")),
    # 2.0 moves the file to newplace/
    "legacy/mover.py": _our_diff("legacy/mover.py", MOVER, MOVER.replace("return 0", "return -1")),
}


def make_rebase_repo(tmp: Path, patches: dict[str, str] | None = None,
                     release_1: dict[str, str] | None = None) -> Fixture:
    """A repo on fakeup 1.0 with our diffs; fakeup 2.0 and 3.0 on the local index."""
    fx = make_repo(tmp)
    wheel1 = build_wheel(fx.wheels, "1.0", RELEASE_1_FULL if release_1 is None else release_1)
    build_wheel(fx.wheels, "2.0", RELEASE_2)
    build_wheel(fx.wheels, "3.0", {**RELEASE_2, "srt/ours.py": "CLASH = 1\n"})
    (fx.root / "upstream.lock").write_text(lock_text("1.0", wheel1))
    for rel, body in (OUR_PATCHES if patches is None else patches).items():
        fx.write_patch(rel, body, reason=f"our change to {rel}")
    fx.git("add", "-A")
    fx.git("commit", "-qm", "delta")
    proc = fx.sync("materialize")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return fx


def snapshot(root: Path, skip: tuple[str, ...] = (".git", ".sync-backups")) -> dict[str, tuple[bytes, int]]:
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        if path.is_dir() or rel.split("/")[0] in skip or "__pycache__" in rel:
            continue
        out[rel] = (path.read_bytes(), path.stat().st_mode & 0o777)
    return out

"""Fetch pinned wheels with pip into a user cache, check their sha256, read their files."""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from upstream_sync import progress, SyncError
from upstream_sync.lock import Release

CACHE_ENV = "SGLANG_RDNA4_CACHE"
FIND_LINKS_ENV = "SGLANG_RDNA4_FIND_LINKS"  # a local folder of wheels instead of the index


@dataclass(frozen=True)
class Member:
    data: bytes
    executable: bool


def cache_dir() -> Path:
    root = os.environ.get(CACHE_ENV)
    base = Path(root).expanduser() if root else Path.home() / ".cache" / "sglang-rdna4"
    return base


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def platform_args(wheel: str) -> list[str]:
    """pip download flags that fetch exactly this wheel file, whatever this interpreter is.

    Later sglang releases ship per-platform wheels (e.g. cp311-cp311-manylinux_2_34_x86_64);
    without these flags a Python 3.12 machine would get another file than the lock pins.
    """
    parts = wheel[: -len(".whl")].split("-") if wheel.endswith(".whl") else []
    if len(parts) < 5:
        return []
    py, abi, plat = parts[-3], parts[-2], parts[-1]
    if abi == "none" and plat == "any":
        return []
    args = []
    if py.startswith("cp") and py[2:].isdigit():
        args += ["--implementation", "cp", "--python-version", f"{py[2]}.{py[3:]}"]
    args += ["--abi", abi]
    for tag in plat.split("."):
        args += ["--platform", tag]
    return args


def _pip_download(release: Release, dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--disable-pip-version-check", "-d", str(dest), *platform_args(release.wheel),
           f"{release.distribution}=={release.version}"]
    links = os.environ.get(FIND_LINKS_ENV)
    if links:
        cmd[4:4] = ["--no-index", "--find-links", links]
    progress(f"[sync] downloading {release.distribution}=={release.version} with pip ...", flush=True)
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SyncError(
            f"pip could not download {release.distribution}=={release.version} "
            f"(command: {shlex.join(cmd)}):\n{proc.stderr.strip()[-2000:]}\n"
            f"Check the network or the package index; a wheel you already have can be put "
            f"at {cache_dir() / 'wheels' / release.wheel}."
        )


def fetch(release: Release) -> Path:
    """Path of the release's wheel in the cache, downloaded if absent, sha256 checked."""
    wheels = cache_dir() / "wheels"
    target = wheels / release.wheel
    if not target.exists():
        wheels.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=wheels) as tmp:
            _pip_download(release, Path(tmp))
            got = Path(tmp) / release.wheel
            if not got.exists():
                names = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
                raise SyncError(
                    f"pip downloaded {names}, not the pinned {release.wheel}; "
                    f"check upstream.lock's wheel name for {release.version}"
                )
            got.replace(target)
        progress(f"[sync] cached {target}", flush=True)
    actual = sha256_file(target)
    if actual != release.sha256:
        raise SyncError(
            f"{target}: sha256 {actual} does not match upstream.lock's {release.sha256} for "
            f"{release.distribution} {release.version}. The cached wheel is corrupt or not the "
            f"pinned release: delete it and run again to re-download; if the index really "
            f"serves different bytes, stop and find out why before changing upstream.lock."
        )
    return target


def read_package(wheel: Path, package: str) -> dict[str, Member]:
    """Files under <package>/ in the wheel, keyed by path relative to that folder."""
    prefix = package.rstrip("/") + "/"
    out: dict[str, Member] = {}
    try:
        with zipfile.ZipFile(wheel) as zf:
            for info in zf.infolist():
                if info.is_dir() or not info.filename.startswith(prefix):
                    continue
                mode = (info.external_attr >> 16) & 0o777
                out[info.filename[len(prefix):]] = Member(zf.read(info), bool(mode & 0o111))
    except zipfile.BadZipFile as err:
        raise SyncError(f"{wheel}: not a readable wheel ({err}); delete it and run again") from err
    if not out:
        raise SyncError(f"{wheel}: holds no '{prefix}' folder; check upstream.lock's package name")
    return out


def fetch_release(distribution: str, version: str) -> Release:
    """A release not yet pinned: download (or reuse the cached) wheel and record its sha256."""
    wheels = cache_dir() / "wheels"
    prefix = f"{distribution.replace('-', '_')}-{version}-"
    cached = sorted(wheels.glob(f"{prefix}*.whl")) if wheels.exists() else []
    if not cached:
        wheels.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=wheels) as tmp:
            probe = Release(distribution, version, wheel="", sha256="")
            _pip_download(probe, Path(tmp))
            got = sorted(Path(tmp).glob("*.whl"))
            if len(got) != 1:
                raise SyncError(f"pip download of {distribution}=={version} gave {len(got)} wheels, expected 1")
            target = wheels / got[0].name
            got[0].replace(target)
            cached = [target]
    wheel = cached[0]
    return Release(distribution, version, wheel=wheel.name, sha256=sha256_file(wheel))

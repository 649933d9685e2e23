"""upstream.lock: the pinned base release and the files cherry-picked from later ones."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from upstream_sync import SyncError

LOCK_NAME = "upstream.lock"


@dataclass(frozen=True)
class Release:
    distribution: str  # name on the package index, e.g. "sglang"
    version: str
    wheel: str  # file name of the wheel
    sha256: str


@dataclass(frozen=True)
class CherryPick:
    release: Release
    path: str  # path inside the wheel's package directory, e.g. "srt/models/x.py"
    sha256: str  # of the file as it stands in that release


@dataclass
class Lock:
    base: Release
    package: str  # the top-level package directory inside the wheel, e.g. "sglang"
    cherry_picks: list[CherryPick] = field(default_factory=list)

    def releases(self) -> list[Release]:
        seen: dict[str, Release] = {self.base.wheel: self.base}
        for pick in self.cherry_picks:
            seen.setdefault(pick.release.wheel, pick.release)
        return list(seen.values())


def _need(table: dict, key: str, where: str) -> str:
    value = table.get(key)
    if not isinstance(value, str) or not value:
        raise SyncError(f"{LOCK_NAME}: [{where}] needs a non-empty string '{key}'")
    return value


def _release(table: dict, where: str, sha_key: str = "sha256") -> Release:
    return Release(
        distribution=_need(table, "distribution", where),
        version=_need(table, "version", where),
        wheel=_need(table, "wheel", where),
        sha256=_need(table, sha_key, where).lower(),
    )


def load(path: Path) -> Lock:
    if not path.is_file():
        raise SyncError(f"{path}: not found; the repository root must hold {LOCK_NAME}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise SyncError(f"{path}: not valid TOML ({err}); fix the file by hand") from err
    base_table = data.get("base")
    if not isinstance(base_table, dict):
        raise SyncError(f"{path}: missing the [base] table")
    lock = Lock(base=_release(base_table, "base"), package=_need(base_table, "package", "base"))
    for n, entry in enumerate(data.get("cherry_pick", []), start=1):
        where = f"cherry_pick #{n}"
        lock.cherry_picks.append(
            CherryPick(
                release=_release(entry, where, sha_key="wheel_sha256"),
                path=_need(entry, "path", where),
                sha256=_need(entry, "sha256", where).lower(),
            )
        )
    return lock


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dump(lock: Lock) -> str:
    b = lock.base
    out = [
        "# Managed by tools/sync_upstream.py: the pinned upstream release (sha256-checked)",
        "# and the files taken from later releases. Git holds no upstream file.",
        "",
        "[base]",
        f"distribution = {_q(b.distribution)}",
        f"version = {_q(b.version)}",
        f"package = {_q(lock.package)}",
        f"wheel = {_q(b.wheel)}",
        f"sha256 = {_q(b.sha256)}",
    ]
    for pick in sorted(lock.cherry_picks, key=lambda p: p.path):
        r = pick.release
        out += [
            "",
            "[[cherry_pick]]",
            f"path = {_q(pick.path)}",
            f"sha256 = {_q(pick.sha256)}",
            f"distribution = {_q(r.distribution)}",
            f"version = {_q(r.version)}",
            f"wheel = {_q(r.wheel)}",
            f"wheel_sha256 = {_q(r.sha256)}",
        ]
    return "\n".join(out) + "\n"


def save(lock: Lock, path: Path) -> None:
    tmp = path.with_suffix(".lock.tmp")
    tmp.write_text(dump(lock))
    tmp.replace(path)

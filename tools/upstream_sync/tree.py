"""The repository as the sync tool sees it: pristine upstream, our diffs, our new files."""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from upstream_sync import SyncError, udiff, wheels
from upstream_sync.lock import LOCK_NAME, Lock, load

PATCHES_DIR = "patches"
PATCH_SUFFIX = ".diff"
MANIFEST_NAME = ".upstream-manifest.json"
BACKUP_DIR = ".sync-backups"
UPSTREAM_STATUSES = ("carry", "candidate")  # or "upstreamed-in <version>"
TODO_REASON = "TODO: say why this edit exists"
IGNORED_PARTS = {"__pycache__", ".pytest_cache"}
IGNORED_SUFFIXES = (".pyc", ".pyo")
_HEADER_RE = re.compile(r"^# (reason|upstream): ?(.*)$")


@dataclass
class Patch:
    target: str  # path relative to the package folder, e.g. "srt/utils/common.py"
    file: Path
    reason: str
    upstream: str
    text: str  # the whole file, header included

    @property
    def counts(self) -> tuple[int, int]:
        return udiff.count_changes(self.text)


def render_patch(target_display: str, diff: str, reason: str, upstream: str) -> str:
    return f"# reason: {reason}\n# upstream: {upstream}\n{diff}"


def parse_patch(file: Path, target: str) -> Patch:
    text = file.read_text()
    reason = upstream = ""
    for line in text.split("\n"):
        if line.startswith("--- "):
            break
        m = _HEADER_RE.match(line)
        if m:
            if m.group(1) == "reason":
                reason = m.group(2).strip()
            else:
                upstream = m.group(2).strip()
    return Patch(target=target, file=file, reason=reason, upstream=upstream, text=text)


def header_problems(patch: Patch, rel: str) -> list[str]:
    problems = []
    if not patch.reason or patch.reason.startswith("TODO"):
        problems.append(f"{rel}: no reason line ('# reason: ...'): say why the edit exists")
    ok = patch.upstream in UPSTREAM_STATUSES or re.fullmatch(r"upstreamed-in \S+", patch.upstream)
    if not ok:
        problems.append(
            f"{rel}: upstream status {patch.upstream!r} must be 'carry', 'candidate' or "
            f"'upstreamed-in <version>' ('# upstream: ...')"
        )
    return problems


def is_ignored(rel: str) -> bool:
    parts = rel.split("/")
    return any(p in IGNORED_PARTS or p.endswith(".egg-info") for p in parts) or rel.endswith(
        IGNORED_SUFFIXES
    )


class Repo:
    def __init__(self, root: Path, lock: Lock | None = None):
        self.root = root.resolve()
        self.lock: Lock = lock if lock is not None else load(self.root / LOCK_NAME)
        self.dest = self.root / "python" / self.lock.package
        self.dest_rel = f"python/{self.lock.package}"
        self.patches_root = self.root / PATCHES_DIR / "python" / self.lock.package

    # --- upstream -------------------------------------------------------------------
    @functools.cached_property
    def pristine(self) -> dict[str, wheels.Member]:
        files = wheels.read_package(wheels.fetch(self.lock.base), self.lock.package)
        for pick in self.lock.cherry_picks:
            members = wheels.read_package(wheels.fetch(pick.release), self.lock.package)
            if pick.path not in members:
                raise SyncError(
                    f"{LOCK_NAME}: cherry-pick {pick.path} is not in {pick.release.wheel}"
                )
            got = wheels.sha256_of(members[pick.path].data)
            if got != pick.sha256:
                raise SyncError(
                    f"{LOCK_NAME}: cherry-pick {pick.path} from {pick.release.version} has "
                    f"sha256 {got}, the lock records {pick.sha256}; re-run cherry-pick"
                )
            files[pick.path] = members[pick.path]
        return files

    def pristine_text(self, rel: str) -> str:
        try:
            return self.pristine[rel].data.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SyncError(f"{self.dest_rel}/{rel}: upstream file is not UTF-8 text; it cannot be diffed") from err

    # --- our delta ------------------------------------------------------------------
    def patch_file_for(self, rel: str) -> Path:
        return self.patches_root / (rel + PATCH_SUFFIX)

    @functools.cached_property
    def patches(self) -> dict[str, Patch]:
        out: dict[str, Patch] = {}
        if not self.patches_root.exists():
            return out
        for file in sorted(self.patches_root.rglob("*")):
            if file.is_dir():
                continue
            rel_file = file.relative_to(self.root).as_posix()
            if not file.name.endswith(PATCH_SUFFIX):
                raise SyncError(f"{rel_file}: not a '{PATCH_SUFFIX}' file; patches/ holds only diffs")
            target = file.relative_to(self.patches_root).as_posix()[: -len(PATCH_SUFFIX)]
            out[target] = parse_patch(file, target)
        return out

    def expected_text(self, rel: str) -> str:
        """The upstream file with our diff applied (strictly)."""
        base = self.pristine_text(rel)
        patch = self.patches.get(rel)
        if patch is None:
            return base
        return udiff.apply_diff(base, patch.text, patch.file.relative_to(self.root).as_posix())

    def expected_bytes(self, rel: str) -> bytes:
        if rel in self.patches:
            return self.expected_text(rel).encode("utf-8")
        return self.pristine[rel].data

    def check_patch_targets(self) -> None:
        for rel, patch in self.patches.items():
            if rel not in self.pristine:
                raise SyncError(
                    f"{patch.file.relative_to(self.root)}: patches {self.dest_rel}/{rel}, which "
                    f"is not an upstream file; a new file belongs in git at its real path"
                )

    # --- the working tree -----------------------------------------------------------
    def working_files(self) -> set[str]:
        out: set[str] = set()
        if not self.dest.exists():
            return out
        for dirpath, dirnames, filenames in os.walk(self.dest):
            dirnames[:] = [d for d in dirnames if d not in IGNORED_PARTS and not d.endswith(".egg-info")]
            for name in filenames:
                rel = (Path(dirpath) / name).relative_to(self.dest).as_posix()
                if not is_ignored(rel):
                    out.add(rel)
        return out

    @functools.cached_property
    def in_git(self) -> bool:
        return _git(self.root, "rev-parse", "--is-inside-work-tree") == "true"

    @functools.cached_property
    def tracked(self) -> set[str]:
        """Files git tracks under the package folder (relative to it); empty outside git."""
        if not self.in_git:
            return set()
        out = _git(self.root, "ls-files", "-z", "--", self.dest_rel)
        prefix = self.dest_rel + "/"
        return {p[len(prefix):] for p in out.split("\0") if p.startswith(prefix)}

    def new_files(self) -> set[str]:
        """Our files: tracked (or, outside git, present) and not upstream."""
        pool = self.tracked if self.in_git else self.working_files()
        return {rel for rel in pool if rel not in self.pristine and not is_ignored(rel)}

    def exclude_path(self) -> Path | None:
        if not self.in_git:
            return None
        path = Path(_git(self.root, "rev-parse", "--git-path", "info/exclude"))
        return path if path.is_absolute() else self.root / path


def _git(root: Path, *args: str) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True)
    except FileNotFoundError:
        return ""
    return proc.stdout.strip("\n") if proc.returncode == 0 else ""


_GLOB_SPECIAL = re.compile(r"([\[\]*?\\!# ])")


def exclude_pattern(path: str) -> str:
    """A gitignore line matching exactly this repo-relative path."""
    return "/" + _GLOB_SPECIAL.sub(r"\\\1", path)

"""The state of a rebase in progress (.sync-rebase/): the guard every verb passes, and the
snapshot of patches/, upstream.lock and the receipt that --abort restores exactly."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from upstream_sync import SyncError
from upstream_sync.lock import LOCK_NAME
from upstream_sync.tree import PATCHES_DIR

STATE_DIR = ".sync-rebase"
SNAPSHOT_DIR = "snapshot"  # under STATE_DIR: patches/ and upstream.lock as they were at 'rebase --to'

# What each verb would do to a tree in mid-rebase, said when it refuses.
_REFUSALS = {
    "materialize": "it would lay the old base back over the merged tree and your resolutions "
                   "(conflict markers gone, rebase state kept)",
    "verify": "the tree is on the new release while patches/ still holds diffs against the old one, "
              "so every merged file would read as a problem; 'rebase --continue' verifies the result",
    "refresh": "diffs are re-recorded against the new release by 'rebase --continue'; recording them "
               "now would write diffs against the old base",
    "cherry-pick": "the pick would be made against the old base",
    "status --against": "the preview reads patches/, which the rebase is rewriting",
    "install": "the build hook runs materialize, which would lay the old base back over the merged "
               "tree and your resolutions",
}


def state_file(root: Path) -> Path:
    return root / STATE_DIR / "state.json"


def in_progress(root: Path) -> dict | None:
    """The rebase state, or None when no rebase is in progress."""
    path = state_file(root)
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as err:
        raise SyncError(f"{path}: unreadable rebase state ({err}); restore it from "
                        f"{STATE_DIR}/ by hand or remove {STATE_DIR}/ once patches/ and "
                        f"{LOCK_NAME} are back as committed (git checkout -- patches {LOCK_NAME})") from err


def describe(state: dict) -> str:
    versions = f"{state.get('from', '?')} -> {state.get('to', '?')}"
    return f"a rebase {versions} is in progress"


def refuse_during_rebase(root: Path, verb: str) -> None:
    """Raise unless no rebase is in progress; the message says why and what to run instead."""
    state = in_progress(root)
    if state is None:
        return
    raise SyncError(
        f"{describe(state)}: '{verb}' refuses to run, because {_REFUSALS[verb]}.\n"
        f"See what is left with 'python tools/sync_upstream.py status', then finish with "
        f"'rebase --continue' or undo everything with 'rebase --abort'."
    )


# --- the snapshot ------------------------------------------------------------------------

def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def snapshot_paths(root: Path, receipt: str) -> list[str]:
    """Repo-relative files the rebase may change and --abort must put back: every file under
    patches/, upstream.lock and (when it exists already) the receipt."""
    out = [LOCK_NAME]
    patches = root / PATCHES_DIR
    if patches.exists():
        out += sorted(p.relative_to(root).as_posix() for p in patches.rglob("*") if p.is_file())
    if (root / receipt).is_file():
        out.append(receipt)
    return out


def take_snapshot(root: Path, receipt: str) -> dict[str, str]:
    """Copy patches/, upstream.lock and the receipt under .sync-rebase/snapshot/; sha256 by path."""
    store = root / STATE_DIR / SNAPSHOT_DIR
    index = {}
    for rel in snapshot_paths(root, receipt):
        data = (root / rel).read_bytes()
        dst = store / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        dst.write_bytes(data)
        index[rel] = _sha(data)
    return index


def snapshot_file(root: Path, rel: str) -> Path:
    return root / STATE_DIR / SNAPSHOT_DIR / rel


def restore_snapshot(root: Path, index: dict[str, str], receipt: str) -> list[str]:
    """Put patches/, upstream.lock and the receipt back exactly as the snapshot has them.

    Returns what changed (for the message). The snapshot is checked before anything is
    touched, so a damaged snapshot changes nothing."""
    store = root / STATE_DIR / SNAPSHOT_DIR
    saved: dict[str, bytes] = {}
    for rel, sha in index.items():
        path = store / rel
        if not path.is_file() or _sha(path.read_bytes()) != sha:
            raise SyncError(
                f"{path}: the rebase snapshot is missing or damaged, so --abort cannot restore "
                f"{rel} exactly; nothing was changed. Restore patches/ and {LOCK_NAME} from git "
                f"(git checkout -- patches {LOCK_NAME}), then remove {STATE_DIR}/ and run materialize."
            )
        saved[rel] = path.read_bytes()

    changed = []
    for rel, data in sorted(saved.items()):
        path = root / rel
        if path.is_file() and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".sync-tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        changed.append(f"restored {rel}")
    patches = root / PATCHES_DIR
    if patches.exists():
        for path in sorted(patches.rglob("*")):
            rel = path.relative_to(root).as_posix()
            if path.is_file() and rel not in saved:
                path.unlink()
                changed.append(f"removed {rel} (written during the rebase)")
        prune_empty_dirs(patches, [p for p in patches.rglob("*") if p.is_dir()])
    receipt_path = root / receipt
    if receipt not in saved and receipt_path.exists():
        receipt_path.unlink()
        changed.append(f"removed {receipt} (the in-progress receipt)")
    return changed


def _only_bytecode(d: Path) -> bool:
    """`d` holds nothing but a __pycache__ of compiled files (left by imports of removed modules)."""
    entries = list(d.iterdir())
    if [e.name for e in entries] != ["__pycache__"] or not entries[0].is_dir():
        return False
    return all(f.is_file() and f.suffix in (".pyc", ".pyo") for f in entries[0].iterdir())


def prune_empty_dirs(top: Path, dirs: list[Path], drop_bytecode: bool = False) -> int:
    """Remove each of `dirs`, then its parents up to (not including) `top`, while empty (or,
    with `drop_bytecode`, holding only a __pycache__ of .pyc files); count the folders removed."""
    removed = 0
    for d in sorted(set(dirs), key=lambda p: len(p.parts), reverse=True):
        while d != top and top in d.parents and d.is_dir():
            if drop_bytecode and _only_bytecode(d):
                shutil.rmtree(d / "__pycache__")
            try:
                d.rmdir()
            except OSError:  # not empty
                break
            removed += 1
            d = d.parent
    return removed

"""Write the vendored tree: upstream files with our diffs applied, the exclude list, a manifest."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

from upstream_sync import progress, SyncError, wheels
from upstream_sync.state import prune_empty_dirs
from upstream_sync.tree import BACKUP_DIR, MANIFEST_NAME, Repo, exclude_pattern

EXCLUDE_BEGIN = "# >>> sglang-rdna4: upstream files laid out by tools/sync_upstream.py (do not edit)"
EXCLUDE_END = "# <<< sglang-rdna4"


def manifest_path(repo: Repo) -> Path:
    return repo.dest.parent / MANIFEST_NAME


def read_manifest(repo: Repo) -> dict[str, str]:
    path = manifest_path(repo)
    if not path.exists():
        return {}
    try:
        return json.loads(path.read_text())["files"]
    except (ValueError, KeyError) as err:
        raise SyncError(f"{path}: unreadable layout manifest ({err}); delete it and re-run with --force") from err


def write_manifest(repo: Repo, files: dict[str, str]) -> None:
    payload = {"base": repo.lock.base.version, "files": files}
    manifest_path(repo).write_text(json.dumps(payload, indent=0, sort_keys=True) + "\n")


def _set_executable(path: Path, executable: bool) -> None:
    mode = path.stat().st_mode
    want = (mode | 0o111) if executable else (mode & ~0o111)
    if want != mode:
        path.chmod(want)


def is_executable(path: Path) -> bool:
    return bool(path.stat().st_mode & 0o111)


def unrecorded_edits(repo: Repo, expected: dict[str, bytes], manifest: dict[str, str]) -> list[str]:
    """Upstream files whose working copy is neither what we would lay out nor what we laid out last."""
    out = []
    for rel, data in expected.items():
        path = repo.dest / rel
        if not path.exists():
            continue
        current = path.read_bytes()
        if current != data and wheels.sha256_of(current) != manifest.get(rel):
            out.append(rel)
    for rel, sha in manifest.items():
        path = repo.dest / rel
        if rel not in expected and path.exists() and wheels.sha256_of(path.read_bytes()) != sha:
            out.append(rel)
    return sorted(out)


def backup(repo: Repo, rels: list[str]) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = repo.root / BACKUP_DIR / stamp
    for rel in rels:
        dst = target / repo.dest_rel / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(repo.dest / rel, dst)
    return target


def lay_out(repo: Repo, expected: dict[str, bytes], force: bool, why: str = "--force") -> None:
    """Write `expected` into the tree. Unrecorded edits stop it, unless `force`: then they are
    set aside in .sync-backups/ first (`why` names the command that asked, for the message)."""
    manifest = read_manifest(repo)
    collisions = sorted(rel for rel in repo.tracked if rel in expected)
    if collisions:
        listed = "\n  ".join(f"{repo.dest_rel}/{c}" for c in collisions[:20])
        raise SyncError(
            f"git tracks {len(collisions)} file(s) that are upstream files:\n  {listed}\n"
            f"Upstream code must not be in git: record edits with 'refresh', then "
            f"'git rm --cached' those paths."
        )
    dirty = unrecorded_edits(repo, expected, manifest)
    if dirty:
        listed = "\n  ".join(f"{repo.dest_rel}/{d}" for d in dirty[:20])
        more = f"\n  ... and {len(dirty) - 20} more" if len(dirty) > 20 else ""
        if not force:
            raise SyncError(
                f"refusing to overwrite {len(dirty)} upstream file(s) with edits not recorded "
                f"in patches/:\n  {listed}{more}\nRun 'python tools/sync_upstream.py refresh' to "
                f"record them (then commit), or pass --force to set them aside in {BACKUP_DIR}/."
            )
        where = backup(repo, dirty)
        progress(f"[sync] {why}: saved {len(dirty)} unrecorded edit(s) under {where} before "
                 f"overwriting them:\n  {listed}{more}", flush=True)

    written = 0
    total = len(expected)
    progress(f"[sync] laying out {total} upstream files into {repo.dest_rel}/ ...", flush=True)
    for n, (rel, data) in enumerate(sorted(expected.items()), start=1):
        path = repo.dest / rel
        if not path.exists() or path.read_bytes() != data:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".sync-tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)
            written += 1
        _set_executable(path, repo.pristine[rel].executable)
        if n % 500 == 0:
            progress(f"[sync]   {n}/{total}", flush=True)
    removed = 0
    emptied: list[Path] = []
    for rel in sorted(set(manifest) - set(expected)):
        path = repo.dest / rel
        if path.exists() and rel not in repo.tracked:
            path.unlink()
            removed += 1
            emptied.append(path.parent)
    # a stale file's folder goes with it when nothing but bytecode is left in it
    pruned = prune_empty_dirs(repo.dest, emptied, drop_bytecode=True)
    write_manifest(repo, {rel: wheels.sha256_of(data) for rel, data in expected.items()})
    write_exclude(repo, sorted(expected))
    print(
        f"[sync] layout done: {written} written, {total - written} already current, "
        f"{removed} stale removed" + (f" ({pruned} emptied folder(s) removed)" if pruned else ""),
        flush=True,
    )


def write_exclude(repo: Repo, rels: list[str]) -> None:
    path = repo.exclude_path()
    if path is None:
        return
    old = path.read_text() if path.exists() else ""
    kept, skipping = [], False
    for line in old.split("\n"):
        if line == EXCLUDE_BEGIN:
            skipping = True
        elif line == EXCLUDE_END:
            skipping = False
        elif not skipping:
            kept.append(line)
    while kept and kept[-1] == "":
        kept.pop()
    block = [EXCLUDE_BEGIN, exclude_pattern(f"python/{MANIFEST_NAME}"), f"/{BACKUP_DIR}/", "/.sync-rebase/"]
    block += [exclude_pattern(f"{repo.dest_rel}/{rel}") for rel in rels]
    block.append(EXCLUDE_END)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(kept + block) + "\n")

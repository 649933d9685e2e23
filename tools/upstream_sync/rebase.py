"""rebase --to VERSION | --continue | --abort, and cherry-pick --from VERSION PATH..."""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from upstream_sync import progress, SyncError, udiff, wheels
from upstream_sync.commands import collect_status, expected_tree, verify
from upstream_sync.layout import lay_out
from upstream_sync.lock import LOCK_NAME, CherryPick, Lock, dump, load, save
from upstream_sync.merge3 import conflict_lines
from upstream_sync.plan import (
    COLLISION,
    CONFLICT,
    DELETED,
    MOVED,
    Plan,
    make_plan,
    plan_markdown,
    plan_table,
)
from upstream_sync.tree import Repo, render_patch

STATE_DIR = ".sync-rebase"
RECEIPTS_DIR = "rebases"


def _state_file(root: Path) -> Path:
    return root / STATE_DIR / "state.json"


def _receipt_path(root: Path, old: str, new: str, dry_run: bool) -> Path:
    suffix = "-dry-run" if dry_run else ""
    return root / RECEIPTS_DIR / f"{old}-to-{new}{suffix}.md"


def _new_lock(repo: Repo, plan: Plan) -> Lock:
    return Lock(base=plan.new, package=repo.lock.package, cherry_picks=list(plan.kept_picks))


def preview(repo: Repo, version: str, fmt: str) -> int:
    """status --against VERSION: the verdicts, the tree untouched."""
    plan = make_plan(repo, wheels.fetch_release(repo.lock.base.distribution, version))
    if fmt == "json":
        print(json.dumps({"from": plan.old.version, "to": plan.new.version,
                          "verdicts": [v.row() for v in plan.verdicts], "counts": plan.counts()}, indent=2))
    elif fmt == "markdown":
        print(plan_markdown(plan, f"Preview: our delta on sglang {plan.new.version}", "preview (tree untouched)"))
    else:
        print(plan_table(plan))
    return 0


def start(repo: Repo, version: str, dry_run: bool) -> int:
    if _state_file(repo.root).exists():
        raise SyncError("a rebase is already in progress: finish it with 'rebase --continue' or 'rebase --abort'")
    report = collect_status(repo)
    if not report["clean"]:
        raise SyncError("the tree has edits not recorded in patches/ (" + ", ".join(report["unrecorded_edits"][:5])
                        + "): run refresh and commit before rebasing")
    new = wheels.fetch_release(repo.lock.base.distribution, version)
    if new.wheel == repo.lock.base.wheel:
        raise SyncError(f"already based on {new.wheel}")
    progress(f"[sync] planning the rebase {repo.lock.base.version} -> {new.version} ...", flush=True)
    plan = make_plan(repo, new)
    print(plan_table(plan))
    collisions = [v.file for v in plan.verdicts if v.verdict == COLLISION]
    if collisions and not dry_run:
        raise SyncError(f"{new.version} adds files at the paths of our new files: {', '.join(collisions)}. "
                        f"Rename ours (git mv, and update imports) on the current base first, then rebase.")
    receipt = _receipt_path(repo.root, plan.old.version, plan.new.version, dry_run)
    receipt.parent.mkdir(parents=True, exist_ok=True)
    if dry_run:
        receipt.write_text(plan_markdown(
            plan, f"Rebase dry run: sglang {plan.old.version} -> {plan.new.version}",
            f"dry run on {time.strftime('%Y-%m-%d')}: tree untouched"))
        print(f"dry run: receipt written to {receipt.relative_to(repo.root)}; the tree is untouched")
        return 0

    new_repo = Repo(repo.root, lock=_new_lock(repo, plan))
    new_tree = dict(plan.new_files)
    for rel, text in plan.merged.items():
        new_tree[rel] = text.encode("utf-8")
    state = {
        "old_lock": dump(repo.lock),
        "new_lock": dump(new_repo.lock),
        "receipt": receipt.relative_to(repo.root).as_posix(),
        "verdicts": [dict(v.row(), rel=v.rel, moved_to=v.moved_to) for v in plan.verdicts],
    }
    _state_file(repo.root).parent.mkdir(parents=True, exist_ok=True)
    _state_file(repo.root).write_text(json.dumps(state, indent=1))
    lay_out(new_repo, new_tree, force=False)
    receipt.write_text(plan_markdown(plan, f"Rebase: sglang {plan.old.version} -> {plan.new.version}",
                                     "in progress"))
    todo = plan.needs_work
    if todo:
        print(f"rebase stopped: {len(todo)} change(s) need you (see {receipt.relative_to(repo.root)}):")
        for v in todo:
            print(f"  {v.file}: {v.verdict} {v.detail}")
        print("Resolve them in the tree, then 'rebase --continue' (or 'rebase --abort').")
        return 1
    print("merged cleanly; finishing with 'rebase --continue' ...")
    return finish(repo.root)


def _load_state(root: Path) -> dict:
    path = _state_file(root)
    if not path.exists():
        raise SyncError("no rebase in progress")
    return json.loads(path.read_text())


def _lock_from_text(root: Path, text: str) -> Lock:
    tmp = root / STATE_DIR / "lock.tmp"
    tmp.write_text(text)
    try:
        return load(tmp)
    finally:
        tmp.unlink()


def finish(root: Path) -> int:
    """rebase --continue: check resolutions, re-record diffs against the new base, verify, pin."""
    state = _load_state(root)
    new_repo = Repo(root, lock=_lock_from_text(root, state["new_lock"]))
    problems = []
    for v in state["verdicts"]:
        rel, path = v["rel"], new_repo.dest / v["rel"]
        if v["verdict"] == CONFLICT and path.exists():
            lines = conflict_lines(path.read_text())
            if lines:
                problems.append(f"{v['file']}: conflict markers remain at line(s) {lines[:10]}")
        if v["verdict"] in (DELETED, MOVED) and new_repo.patch_file_for(rel).exists():
            problems.append(
                f"{v['file']}: {v['verdict']} {v['detail']}; port the change to its new home "
                f"(edit inline), then delete {new_repo.patch_file_for(rel).relative_to(root)}"
            )
        if v["verdict"] == COLLISION and rel in new_repo.tracked and rel in new_repo.pristine:
            problems.append(f"{v['file']}: still collides with the new upstream file; rename ours (git mv)")
    if problems:
        print("rebase --continue: not yet:")
        for p in problems:
            print(f"  - {p}")
        return 1

    snapshot = {p: p.read_bytes() for p in new_repo.patches_root.rglob("*.diff")} if new_repo.patches_root.exists() else {}
    old_patches = {v["moved_to"]: (v["reason"], v["upstream"]) for v in state["verdicts"] if v.get("moved_to")}
    old_patches.update({rel: (p.reason, p.upstream) for rel, p in new_repo.patches.items()})
    for file in snapshot:
        file.unlink()
    recorded = 0
    for rel in sorted(new_repo.pristine):
        path = new_repo.dest / rel
        if not path.exists():
            continue
        current = path.read_bytes()
        if current == new_repo.pristine[rel].data:
            continue
        reason, status = old_patches.get(rel, ("", ""))
        shown = f"{new_repo.dest_rel}/{rel}"
        diff = udiff.make_diff(new_repo.pristine_text(rel), current.decode("utf-8"), shown)
        out = new_repo.patch_file_for(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(render_patch(shown, diff, reason or "TODO: say why this edit exists", status or "carry"))
        recorded += 1
    fresh = Repo(root, lock=new_repo.lock)
    progress(f"[sync] re-recorded {recorded} diff(s) against {fresh.lock.base.version}; verifying ...", flush=True)
    if verify(fresh) != 0:
        for file in fresh.patches_root.rglob("*.diff"):
            file.unlink()
        for file, data in snapshot.items():
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_bytes(data)
        print("rebase --continue: verify failed; upstream.lock is unchanged and the rebase is still "
              "in progress. Fix the problems above and run --continue again, or --abort.")
        return 1
    save(fresh.lock, root / LOCK_NAME)
    receipt = root / state["receipt"]
    if receipt.exists():
        receipt.write_text(receipt.read_text().replace("- status: in progress",
                                                       f"- status: completed {time.strftime('%Y-%m-%d')}; verify passed"))
    shutil.rmtree(root / STATE_DIR)
    print(f"rebase complete: upstream.lock now pins {fresh.lock.base.distribution} {fresh.lock.base.version}; "
          f"commit upstream.lock, patches/ and {state['receipt']}")
    return 0


def abort(root: Path) -> int:
    state = _load_state(root)
    old_repo = Repo(root, lock=_lock_from_text(root, state["old_lock"]))
    lay_out(old_repo, expected_tree(old_repo), force=True)
    receipt = root / state["receipt"]
    if receipt.exists():
        receipt.unlink()
    shutil.rmtree(root / STATE_DIR)
    print(f"rebase aborted: the tree is back on {old_repo.lock.base.version}")
    return 0


def cherry_pick(repo: Repo, version: str, paths: list[str]) -> int:
    if _state_file(repo.root).exists():
        raise SyncError("a rebase is in progress: finish or abort it first")
    release = wheels.fetch_release(repo.lock.base.distribution, version)
    members = wheels.read_package(wheels.fetch(release), repo.lock.package)
    prefix = repo.dest_rel + "/"
    picks = {p.path: p for p in repo.lock.cherry_picks}
    for raw in paths:
        rel = raw[len(prefix):] if raw.startswith(prefix) else raw
        if rel not in members:
            raise SyncError(f"{raw}: not in {release.wheel}")
        if rel in repo.patches:
            raise SyncError(f"{prefix}{rel}: has a diff against {repo.lock.base.version}; a cherry-pick replaces "
                            f"the file that diff was made against. Revert the edit, refresh, then cherry-pick.")
        if rel in repo.tracked and rel not in repo.pristine:
            raise SyncError(f"{prefix}{rel}: is one of our new files; rename it before picking upstream's")
        picks[rel] = CherryPick(release=release, path=rel, sha256=wheels.sha256_of(members[rel].data))
        progress(f"[sync] cherry-pick {prefix}{rel} from {version}")
    new_lock = replace(repo.lock, cherry_picks=sorted(picks.values(), key=lambda p: p.path))
    new_repo = Repo(repo.root, lock=new_lock)
    lay_out(new_repo, expected_tree(new_repo), force=False)
    save(new_lock, repo.root / LOCK_NAME)
    print(f"cherry-pick: {len(paths)} file(s) recorded in {LOCK_NAME}; commit it")
    return 0

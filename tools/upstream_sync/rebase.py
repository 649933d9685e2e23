"""rebase --to VERSION | --continue | --abort, and cherry-pick --from VERSION PATH..."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

from upstream_sync import progress, SyncError, udiff, wheels
from upstream_sync.commands import collect_status, expected_tree, verify
from upstream_sync.layout import lay_out, manifest_path
from upstream_sync.lock import LOCK_NAME, CherryPick, Lock, dump, load, save
from upstream_sync.merge3 import conflict_lines
from upstream_sync.plan import (
    COLLISION,
    CONFLICT,
    DELETED,
    MOVED,
    NEEDS_WORK,
    REWRITTEN,
    Plan,
    make_plan,
    plan_markdown,
    plan_table,
)
from upstream_sync.state import (
    SNAPSHOT_DIR,
    STATE_DIR,
    describe,
    in_progress,
    prune_empty_dirs,
    refuse_during_rebase,
    restore_snapshot,
    snapshot_paths,
    state_file,
    take_snapshot,
)
from upstream_sync.tree import TODO_REASON, Patch, Repo, render_patch

RECEIPTS_DIR = "rebases"


def _receipt_path(root: Path, old: str, new: str, dry_run: bool) -> Path:
    suffix = "-dry-run" if dry_run else ""
    return root / RECEIPTS_DIR / f"{old}-to-{new}{suffix}.md"


def _new_lock(repo: Repo, plan: Plan) -> Lock:
    return Lock(base=plan.new, package=repo.lock.package, cherry_picks=list(plan.kept_picks))


def preview(repo: Repo, version: str, fmt: str) -> int:
    """status --against VERSION: the verdicts, the tree untouched."""
    refuse_during_rebase(repo.root, "status --against")
    plan = make_plan(repo, wheels.fetch_release(repo.lock.base.distribution, version))
    if fmt == "json":
        print(json.dumps({"from": plan.old.version, "to": plan.new.version,
                          "verdicts": [v.row() for v in plan.verdicts], "counts": plan.counts()}, indent=2))
    elif fmt == "markdown":
        print(plan_markdown(plan, f"Preview: our delta on sglang {plan.new.version}", "preview (tree untouched)"))
    else:
        print(plan_table(plan))
    return 0


def _without_status_line(text: str) -> list[str]:
    return [line for line in text.split("\n") if not line.startswith("- status: ")]


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".sync-tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def start(repo: Repo, version: str, dry_run: bool) -> int:
    state = in_progress(repo.root)
    if state is not None:
        raise SyncError(f"{describe(state)}: finish it with 'rebase --continue' or 'rebase --abort' "
                        f"('status' lists what is left)")
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
    receipt_rel = receipt.relative_to(repo.root).as_posix()
    if dry_run:
        text = plan_markdown(plan, f"Rebase dry run: sglang {plan.old.version} -> {plan.new.version}",
                             f"dry run on {time.strftime('%Y-%m-%d')}: tree untouched")
        if receipt.exists() and _without_status_line(receipt.read_text()) == _without_status_line(text):
            print(f"dry run: {receipt_rel} already holds these verdicts; left as it is (date kept). "
                  f"The tree is untouched")
            return 0
        _write_atomic(receipt, text.encode("utf-8"))
        print(f"dry run: receipt written to {receipt_rel}; the tree is untouched")
        return 0

    new_repo = Repo(repo.root, lock=_new_lock(repo, plan))
    new_tree = dict(plan.new_files)
    for rel, text in plan.merged.items():
        new_tree[rel] = text.encode("utf-8")
    # The snapshot is complete before state.json exists: whenever a rebase is in progress,
    # --abort can put patches/, upstream.lock and the receipt back exactly.
    snapshot = take_snapshot(repo.root, receipt_rel)
    state = {
        "from": plan.old.version,
        "to": plan.new.version,
        "old_lock": dump(repo.lock),
        "new_lock": dump(new_repo.lock),
        "receipt": receipt_rel,
        "snapshot": snapshot,
        "verdicts": [dict(v.row(), rel=v.rel, moved_to=v.moved_to) for v in plan.verdicts],
    }
    _write_atomic(state_file(repo.root), json.dumps(state, indent=1).encode("utf-8"))
    saved = sum(rel.startswith("patches/") for rel in snapshot)
    progress(f"[sync] saved patches/ ({saved} file(s)) and {LOCK_NAME} under {STATE_DIR}/: "
             f"'rebase --abort' restores them exactly, whatever happens to them meanwhile", flush=True)
    try:
        lay_out(new_repo, new_tree, force=False)
    except BaseException:
        print("rebase --to stopped part-way through laying out the tree; 'rebase --abort' puts "
              "everything back as it was", file=sys.stderr)
        raise
    _write_atomic(receipt, plan_markdown(plan, f"Rebase: sglang {plan.old.version} -> {plan.new.version}",
                                         "in progress").encode("utf-8"))
    todo = plan.needs_work
    if todo:
        print(f"rebase stopped: {len(todo)} change(s) need you (see {receipt_rel}):")
        for v in todo:
            print(f"  {v.file}: {v.verdict} {v.detail}")
        if any(v.verdict in (MOVED, DELETED, REWRITTEN) for v in todo):
            print(f"The diffs of moved, deleted or rewritten files stay readable under "
                  f"{STATE_DIR}/{SNAPSHOT_DIR}/patches/ (and in git) once you delete them.")
        print("Resolve them in the tree ('status' lists what is left), then 'rebase --continue' "
              "(or 'rebase --abort'). Until then the other verbs and 'pip install -e python' refuse to run.")
        return 1
    print("merged cleanly; finishing with 'rebase --continue' ...")
    return finish(repo.root)


def _load_state(root: Path) -> dict:
    state = in_progress(root)
    if state is None:
        raise SyncError("no rebase in progress")
    return state


def _lock_from_text(root: Path, text: str) -> Lock:
    tmp = root / STATE_DIR / "lock.tmp"
    tmp.write_text(text)
    try:
        return load(tmp)
    finally:
        tmp.unlink()


def open_items(root: Path, state: dict, new_repo: Repo) -> tuple[list[dict], list[dict]]:
    """(what still needs the maintainer, what is resolved) among the changes that needed work."""
    todo, done = [], []
    for v in state["verdicts"]:
        if v["verdict"] not in NEEDS_WORK:
            continue
        rel, path = v["rel"], new_repo.dest / v["rel"]
        patch = new_repo.patch_file_for(rel)
        problem = ""
        if v["verdict"] == CONFLICT and path.exists():
            lines = conflict_lines(path.read_text(errors="replace"))
            if lines:
                problem = (f"conflict markers remain at {len(lines)} line(s): "
                           f"{', '.join(map(str, lines[:10]))}{' ...' if len(lines) > 10 else ''}")
        elif v["verdict"] in (DELETED, MOVED, REWRITTEN) and patch.exists():
            kept = (root / STATE_DIR / SNAPSHOT_DIR / patch.relative_to(root)).relative_to(root)
            problem = (f"{v['verdict']}{' (' + v['detail'] + ')' if v['detail'] else ''}; port the change "
                       f"to its new home (edit inline), then delete {patch.relative_to(root)} "
                       f"(a copy stays at {kept} until the rebase ends)")
        elif v["verdict"] == COLLISION and rel in new_repo.tracked and rel in new_repo.pristine:
            problem = "still collides with the new upstream file; rename ours (git mv)"
        item = {"file": v["file"], "verdict": v["verdict"]}
        if problem:
            todo.append(dict(item, todo=problem))
        else:
            done.append(item)
    return todo, done


def _changed_since_snapshot(root: Path, index: dict[str, str]) -> list[str]:
    out = []
    now = {rel for rel in snapshot_paths(root, "") if rel != LOCK_NAME}
    for rel, sha in sorted(index.items()):
        path = root / rel
        if not rel.startswith("patches/") and rel != LOCK_NAME:
            continue
        if not path.is_file():
            out.append(f"{rel}: deleted")
        elif hashlib.sha256(path.read_bytes()).hexdigest() != sha:
            out.append(f"{rel}: edited")
    out += [f"{rel}: added" for rel in sorted(now - set(index))]
    return out


def rebase_status(root: Path, fmt: str) -> int:
    """status while a rebase is in progress: what is left, what is done, what --abort restores."""
    state = _load_state(root)
    new_repo = Repo(root, lock=_lock_from_text(root, state["new_lock"]))
    todo, done = open_items(root, state, new_repo)
    changed = _changed_since_snapshot(root, state.get("snapshot", {}))
    report = {"rebase": {"from": state.get("from"), "to": state.get("to"), "receipt": state["receipt"],
                         "todo": todo, "resolved": done, "changed_since_start": changed},
              "clean": False}
    if fmt == "json":
        print(json.dumps(report, indent=2))
        return 1
    out = [f"REBASE IN PROGRESS: {state.get('from', '?')} -> {state.get('to', '?')} "
           f"(receipt {state['receipt']})"]
    out.append(f"to do before 'rebase --continue': {len(todo)}")
    out += [f"  {t['file']}: {t['todo']}" for t in todo]
    out.append(f"resolved: {len(done)}")
    out += [f"  {d['file']} ({d['verdict']})" for d in done]
    if changed:
        out.append(f"patches/ and {LOCK_NAME} changed since the rebase started ('rebase --abort' "
                   f"puts them back; '--continue' re-records every diff):")
        out += [f"  {c}" for c in changed]
    out.append("materialize, verify, refresh, cherry-pick and 'pip install -e python' refuse to run "
               "until 'rebase --continue' or 'rebase --abort'.")
    print("\n".join(out))
    return 1


def _laid_out_base(root: Path, repo: Repo) -> str | None:
    try:
        return json.loads(manifest_path(repo).read_text()).get("base")
    except (OSError, ValueError):
        return None


def finish(root: Path) -> int:
    """rebase --continue: check resolutions, re-record diffs against the new base, verify, pin.

    Nothing under patches/ is deleted or rewritten until the new diffs have passed verify
    in memory; the snapshot taken at 'rebase --to' still backs --abort until the end."""
    state = _load_state(root)
    new_repo = Repo(root, lock=_lock_from_text(root, state["new_lock"]))
    laid = _laid_out_base(root, new_repo)
    if laid != new_repo.lock.base.version:
        raise SyncError(
            f"the tree is laid out on {laid or 'an unknown base'}, not on {new_repo.lock.base.version}: "
            f"something laid out another release during the rebase (materialize or 'pip install -e python' "
            f"of an older tool), so the merged files and your resolutions are no longer in the tree. "
            f"Run 'rebase --abort' (it restores patches/ and {LOCK_NAME}) and start the rebase again."
        )
    todo, _ = open_items(root, state, new_repo)
    if todo:
        print("rebase --continue: not yet:")
        for t in todo:
            print(f"  - {t['file']}: {t['todo']}")
        return 1

    carried = {v["rel"]: (v["reason"], v["upstream"]) for v in state["verdicts"] if v["kind"] == "diff"}
    carried.update({v["moved_to"]: (v["reason"], v["upstream"]) for v in state["verdicts"] if v.get("moved_to")})
    carried.update({rel: (p.reason, p.upstream) for rel, p in new_repo.patches.items()})
    recorded: dict[str, Patch] = {}
    for rel in sorted(new_repo.pristine):
        path = new_repo.dest / rel
        if not path.exists():
            continue
        current = path.read_bytes()
        if current == new_repo.pristine[rel].data:
            continue
        reason, status = carried.get(rel, ("", ""))
        shown = f"{new_repo.dest_rel}/{rel}"
        try:
            text = current.decode("utf-8")
        except UnicodeDecodeError as err:
            raise SyncError(f"{shown}: edited upstream file is not UTF-8 text; cannot record it") from err
        diff = udiff.make_diff(new_repo.pristine_text(rel), text, shown)
        recorded[rel] = Patch(target=rel, file=new_repo.patch_file_for(rel), reason=reason or TODO_REASON,
                              upstream=status or "carry",
                              text=render_patch(shown, diff, reason or TODO_REASON, status or "carry"))
    fresh = Repo(root, lock=new_repo.lock)
    fresh.__dict__["patches"] = recorded  # verify the new delta before any file under patches/ changes
    old_count = sum(v["kind"] == "diff" for v in state["verdicts"])
    progress(f"[sync] {len(recorded)} diff(s) against {fresh.lock.base.version} (there were {old_count} "
             f"on {state.get('from', 'the old base')}); verifying them before writing any ...", flush=True)
    if verify(fresh) != 0:
        print("rebase --continue: verify failed; patches/ and upstream.lock are untouched and the rebase "
              "is still in progress. Fix the problems above and run --continue again, or --abort.")
        unexplained = [p for p in recorded.values() if p.reason == TODO_REASON]
        if unexplained:
            print("An edit with no reason is one no diff covered before (a change ported to a new file): give "
                  "it one by writing just the header lines '# reason: ...' and '# upstream: carry|candidate' to")
            for p in unexplained:
                print(f"  {p.file.relative_to(root)}")
            print("(the diff body is recorded by --continue).")
        return 1

    # Replacements first, removals after: at no point is a diff gone without its successor.
    for rel, patch in sorted(recorded.items()):
        data = patch.text.encode("utf-8")
        if not patch.file.exists() or patch.file.read_bytes() != data:
            _write_atomic(patch.file, data)
    stale = [p for p in fresh.patches_root.rglob("*.diff")
             if p.relative_to(fresh.patches_root).as_posix()[: -len(".diff")] not in recorded] \
        if fresh.patches_root.exists() else []
    for file in stale:
        file.unlink()
    prune_empty_dirs(root / "patches", [f.parent for f in stale])
    save(fresh.lock, root / LOCK_NAME)
    receipt = root / state["receipt"]
    if receipt.exists():
        receipt.write_text(receipt.read_text().replace("- status: in progress",
                                                       f"- status: completed {time.strftime('%Y-%m-%d')}; verify passed"))
    shutil.rmtree(root / STATE_DIR)
    print(f"rebase complete: upstream.lock now pins {fresh.lock.base.distribution} {fresh.lock.base.version} "
          f"with {len(recorded)} diff(s) ({len(stale)} retired); commit upstream.lock, patches/ and {state['receipt']}")
    return 0


def abort(root: Path) -> int:
    """Put patches/, upstream.lock and the receipt back from the snapshot, then lay out the old tree."""
    state = _load_state(root)
    snapshot = state.get("snapshot")
    if snapshot is None:
        progress(f"[sync] WARNING: this rebase was started by an older sync tool that kept no snapshot: "
                 f"patches/ is used as it is now. Check 'git status patches {LOCK_NAME}' and restore "
                 f"any diff you deleted (git checkout -- patches) before building.", flush=True)
        changed = []
        receipt = root / state["receipt"]
        if receipt.exists():
            receipt.unlink()
    else:
        changed = restore_snapshot(root, snapshot, state["receipt"])
    old_repo = Repo(root)
    if dump(old_repo.lock) != dump(_lock_from_text(root, state["old_lock"])):
        raise SyncError(f"{LOCK_NAME} does not match the lock recorded when the rebase started; "
                        f"restore it (git checkout -- {LOCK_NAME}) and run --abort again")
    lay_out(old_repo, expected_tree(old_repo), force=True, why="rebase --abort")
    shutil.rmtree(root / STATE_DIR)
    for line in changed:
        progress(f"[sync]   {line}")
    print(f"rebase aborted: the tree is back on {old_repo.lock.base.version} with the "
          f"{len(old_repo.patches)} diff(s) recorded when the rebase started"
          + (f" ({len(changed)} file(s) under patches/, {LOCK_NAME} or rebases/ restored)" if changed else ""))
    return 0


def cherry_pick(repo: Repo, version: str, paths: list[str]) -> int:
    refuse_during_rebase(repo.root, "cherry-pick")
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

"""The verbs: materialize, verify, status, refresh."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from upstream_sync import progress, SyncError, udiff
from upstream_sync.layout import is_executable, lay_out, read_manifest, unrecorded_edits
from upstream_sync.tree import TODO_REASON, Repo, header_problems, is_ignored, render_patch


def expected_tree(repo: Repo) -> dict[str, bytes]:
    repo.check_patch_targets()
    return {rel: repo.expected_bytes(rel) for rel in repo.pristine}


def materialize(repo: Repo, force: bool = False) -> int:
    base = repo.lock.base
    progress(f"[sync] materialize {base.distribution} {base.version} + {len(repo.patches)} diff(s) "
          f"+ {len(repo.lock.cherry_picks)} cherry-pick(s)", flush=True)
    lay_out(repo, expected_tree(repo), force=force)
    return 0


# --- verify ---------------------------------------------------------------------------

def verify(repo: Repo, import_smoke: bool = True) -> int:
    problems: list[str] = []
    root_rel = lambda p: p.relative_to(repo.root).as_posix()  # noqa: E731
    repo.check_patch_targets()

    with tempfile.TemporaryDirectory(prefix="sync-verify-") as tmp:
        scratch = Path(tmp) / repo.lock.package
        for rel, member in repo.pristine.items():
            path = scratch / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(member.data)

        for rel, patch in sorted(repo.patches.items()):
            name = root_rel(patch.file)
            problems += header_problems(patch, name)
            pristine = repo.pristine_text(rel)
            try:
                patched = udiff.apply_diff(pristine, patch.text, name)
            except udiff.PatchError as err:
                problems.append(f"does not apply: {err}")
                continue
            if patched == pristine:
                problems.append(f"{name}: changes nothing; delete it")
            if udiff.applies(patched, patch.text):
                problems.append(
                    f"{name}: applies a second time on top of itself; widen its context "
                    f"(refresh regenerates it with 3 lines)"
                )
            (scratch / rel).write_text(patched)

        new = repo.new_files()
        for rel in sorted(new):
            src = repo.dest / rel
            if not src.exists():
                problems.append(
                    f"{repo.dest_rel}/{rel}: tracked new file is missing from the tree; restore it "
                    f"with 'git checkout -- {repo.dest_rel}/{rel}' or 'git rm' it"
                )
                continue
            dst = scratch / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst)

        problems += _compare(repo, scratch, new)
        touched = sorted(set(repo.patches) | new)
        problems += _compile(scratch, touched, repo.dest_rel)

    imported = 0
    if import_smoke and not problems:
        modules = sorted({_module_name(repo.lock.package, rel) for rel in touched if rel.endswith(".py")})
        problems += _import_smoke(repo, modules)
        imported = len(modules)
        problems += _inventory_check(repo)

    if problems:
        print(f"verify: FAILED ({len(problems)} problem(s))")
        for p in problems:
            print(f"  - {p}")
        return 1
    print(
        f"verify: OK: {len(repo.patches)} diff(s) apply exactly and only once, "
        f"{len(repo.lock.cherry_picks)} cherry-pick(s), {len(new)} new file(s); the replayed tree "
        f"equals {repo.dest_rel}/ byte for byte (modes too)"
        + (f"; {imported} touched module(s) import" if import_smoke else "; import smoke skipped")
    )
    return 0


def _compare(repo: Repo, scratch: Path, new: set[str]) -> list[str]:
    problems = []
    working = repo.working_files()
    replay = {p.relative_to(scratch).as_posix() for p in scratch.rglob("*") if p.is_file()}
    for rel in sorted(replay - working):
        if rel in repo.pristine:
            problems.append(f"{repo.dest_rel}/{rel}: upstream file missing from the tree; run materialize")
    for rel in sorted(working - replay):
        problems.append(
            f"{repo.dest_rel}/{rel}: not upstream and not tracked by git: 'git add' it, or remove it"
        )
    for rel in sorted(replay & working):
        a, b = scratch / rel, repo.dest / rel
        if a.read_bytes() != b.read_bytes():
            if rel in repo.pristine:
                problems.append(
                    f"{repo.dest_rel}/{rel}: edited but not recorded in patches/ "
                    f"(run 'python tools/sync_upstream.py refresh')"
                )
            else:
                problems.append(f"{repo.dest_rel}/{rel}: differs from the replay")
        elif rel in repo.pristine and is_executable(b) != repo.pristine[rel].executable:
            problems.append(f"{repo.dest_rel}/{rel}: file mode differs from upstream; run materialize")
    return problems


def _compile(scratch: Path, touched: list[str], dest_rel: str) -> list[str]:
    problems = []
    for rel in touched:
        if not rel.endswith(".py"):
            continue
        path = scratch / rel
        if not path.exists():
            continue
        try:
            compile(path.read_bytes(), f"{dest_rel}/{rel}", "exec")
        except SyntaxError as err:
            problems.append(f"{dest_rel}/{rel}: does not compile: line {err.lineno}: {err.msg}")
    return problems


def _module_name(package: str, rel: str) -> str:
    parts = [package] + rel[: -len(".py")].split("/")
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


_SMOKE = r"""
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    try:
        importlib.import_module(name)
    except BaseException as err:
        failures[name] = "".join(traceback.format_exception_only(type(err), err)).strip()
print(json.dumps(failures))
"""


def _import_smoke(repo: Repo, modules: list[str]) -> list[str]:
    if not modules:
        return []
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(repo.dest.parent)] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
    )
    env.setdefault("CUDA_VISIBLE_DEVICES", "")
    progress(f"[sync] import smoke: {len(modules)} touched module(s) on CPU ...", flush=True)
    proc = subprocess.run(
        [sys.executable, "-c", _SMOKE, json.dumps(modules)],
        capture_output=True, text=True, env=env, cwd=repo.root,
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return [f"import smoke crashed (exit {proc.returncode}): {proc.stderr.strip()[-1500:]}"]
    failures = json.loads(lines[-1])
    return [f"{name}: does not import on CPU: {msg}" for name, msg in sorted(failures.items())]


INVENTORY_TOOL = "tools/sgl_kernel_inventory.py"


def _inventory_check(repo: Repo) -> list[str]:
    """The sgl_kernel inventory must still list every symbol the tree imports."""
    tool = repo.root / INVENTORY_TOOL
    if not tool.is_file():
        return []
    progress("[sync] sgl_kernel inventory: checking it still covers the tree ...")
    proc = subprocess.run([sys.executable, str(tool), "--check"], capture_output=True, text=True,
                          cwd=repo.root)
    if proc.returncode == 0:
        return []
    detail = (proc.stdout + proc.stderr).strip()[-1500:]
    return [f"{INVENTORY_TOOL} --check failed: the sgl_kernel inventory no longer matches the tree "
            f"(update sgl-kernel-rocm and run '{INVENTORY_TOOL} --write'):\n{detail}"]


# --- status ---------------------------------------------------------------------------

def _line_count(path: Path) -> int:
    try:
        return len(path.read_bytes().splitlines())
    except OSError:
        return 0


def collect_status(repo: Repo) -> dict:
    expected = expected_tree(repo)
    dirty = [
        rel for rel in unrecorded_edits(repo, expected, read_manifest(repo))
        if rel in expected and (repo.dest / rel).exists()
        and (repo.dest / rel).read_bytes() != expected[rel]
    ]
    diffs = []
    for rel, patch in sorted(repo.patches.items()):
        added, removed = patch.counts
        diffs.append({
            "file": f"{repo.dest_rel}/{rel}",
            "patch": patch.file.relative_to(repo.root).as_posix(),
            "reason": patch.reason,
            "upstream": patch.upstream,
            "added": added,
            "removed": removed,
        })
    new_files = []
    for rel in sorted(repo.new_files()):
        new_files.append({"file": f"{repo.dest_rel}/{rel}", "lines": _line_count(repo.dest / rel)})
    untracked = sorted(
        rel for rel in repo.working_files()
        if repo.in_git and rel not in repo.pristine and rel not in repo.tracked and not is_ignored(rel)
    )
    picks = [
        {"file": f"{repo.dest_rel}/{p.path}", "version": p.release.version, "sha256": p.sha256}
        for p in repo.lock.cherry_picks
    ]
    diff_added = sum(d["added"] for d in diffs)
    new_lines = sum(f["lines"] for f in new_files)
    ours = diff_added + new_lines
    return {
        "base": {"distribution": repo.lock.base.distribution, "version": repo.lock.base.version},
        "diffs": diffs,
        "new_files": new_files,
        "cherry_picks": picks,
        "unrecorded_edits": [f"{repo.dest_rel}/{rel}" for rel in sorted(dirty)],
        "untracked_new_files": [f"{repo.dest_rel}/{rel}" for rel in untracked],
        "totals": {
            "upstream_files_touched": len(diffs),
            "diff_lines_added": diff_added,
            "diff_lines_removed": sum(d["removed"] for d in diffs),
            "new_files": len(new_files),
            "new_file_lines": new_lines,
            "additive_share": round(new_lines / ours, 4) if ours else 1.0,
        },
        "clean": not dirty,
    }


def status(repo: Repo, fmt: str = "table") -> int:
    report = collect_status(repo)
    if fmt == "json":
        print(json.dumps(report, indent=2))
    elif fmt == "markdown":
        print(format_status_markdown(report))
    else:
        print(format_status(report))
    return 0 if report["clean"] else 1


def format_status_markdown(report: dict) -> str:
    t = report["totals"]
    base = report["base"]
    out = [
        f"## Divergence from {base['distribution']} {base['version']}",
        "",
        f"{t['upstream_files_touched']} upstream files touched (+{t['diff_lines_added']}/-{t['diff_lines_removed']} "
        f"lines); {t['new_files']} new files ({t['new_file_lines']} lines); additive share "
        f"{t['additive_share']:.1%}; {len(report['cherry_picks'])} cherry-picks.",
        "",
        "| file | + | - | upstream | reason |",
        "|---|---:|---:|---|---|",
    ]
    for d in report["diffs"]:
        out.append(f"| `{d['file']}` | {d['added']} | {d['removed']} | {d['upstream']} | {d['reason']} |")
    if report["cherry_picks"]:
        out += ["", "| cherry-picked file | from |", "|---|---|"]
        out += [f"| `{p['file']}` | {p['version']} |" for p in report["cherry_picks"]]
    if not report["clean"]:
        out += ["", f"**Not clean**: {len(report['unrecorded_edits'])} unrecorded edit(s)."]
    return "\n".join(out)


def format_status(report: dict) -> str:
    base = report["base"]
    t = report["totals"]
    out = [f"base: {base['distribution']} {base['version']}", ""]
    out.append(f"diffs against upstream ({t['upstream_files_touched']} file(s)):")
    if report["diffs"]:
        width = max(len(d["file"]) for d in report["diffs"])
        out.append(f"  {'file'.ljust(width)}  {'+':>5} {'-':>5}  {'upstream':<12} reason")
        for d in report["diffs"]:
            out.append(
                f"  {d['file'].ljust(width)}  {d['added']:>5} {d['removed']:>5}  "
                f"{d['upstream']:<12} {d['reason']}"
            )
    else:
        out.append("  (none)")
    out += ["", f"new files: {t['new_files']} ({t['new_file_lines']} lines)"]
    out += [f"cherry-picks: {len(report['cherry_picks'])}"]
    for p in report["cherry_picks"]:
        out.append(f"  {p['file']}  from {p['version']}")
    out += [
        "",
        f"totals: {t['upstream_files_touched']} upstream file(s) touched, "
        f"+{t['diff_lines_added']}/-{t['diff_lines_removed']} lines in diffs, "
        f"{t['new_file_lines']} lines in new files (additive share {t['additive_share']:.1%})",
    ]
    if report["untracked_new_files"]:
        out.append(f"untracked new files (git add them or they are lost): {len(report['untracked_new_files'])}")
        out += [f"  {f}" for f in report["untracked_new_files"][:30]]
    if report["unrecorded_edits"]:
        out.append(f"NOT CLEAN: {len(report['unrecorded_edits'])} edit(s) not recorded in patches/ "
                   f"(run 'python tools/sync_upstream.py refresh'):")
        out += [f"  {f}" for f in report["unrecorded_edits"]]
    else:
        out.append("clean: every edit of an upstream file is recorded in patches/")
    return "\n".join(out)


# --- refresh --------------------------------------------------------------------------

def refresh(repo: Repo, paths: list[str], reason: str | None, upstream: str | None) -> int:
    repo.check_patch_targets()
    targets = _refresh_targets(repo, paths)
    changed = todo = 0
    for rel in targets:
        path = repo.dest / rel
        patch = repo.patches.get(rel)
        patch_file = repo.patch_file_for(rel)
        shown = f"{repo.dest_rel}/{rel}"
        if not path.exists():
            raise SyncError(f"{shown}: upstream file deleted in the tree; deleting upstream files "
                            f"is not supported: run materialize to restore it")
        try:
            current = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as err:
            raise SyncError(f"{shown}: edited upstream file is not UTF-8 text; cannot record it") from err
        pristine = repo.pristine_text(rel)
        if current == pristine:
            if patch is not None:
                patch_file.unlink()
                progress(f"[sync] {shown}: equals upstream again; removed {patch_file.relative_to(repo.root)}")
                changed += 1
            continue
        if patch is not None and repo.expected_text(rel) == current and reason is None and upstream is None:
            continue
        diff = udiff.make_diff(pristine, current, shown)
        new_reason = reason or (patch.reason if patch else "") or TODO_REASON
        new_upstream = upstream or (patch.upstream if patch else "") or "carry"
        patch_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = patch_file.with_name(patch_file.name + ".sync-tmp")  # the old diff stays until the new one is whole
        tmp.write_text(render_patch(shown, diff, new_reason, new_upstream))
        os.replace(tmp, patch_file)
        added, removed = udiff.count_changes(diff)
        progress(f"[sync] {shown}: recorded in {patch_file.relative_to(repo.root)} (+{added} -{removed})")
        changed += 1
        if new_reason == TODO_REASON:
            todo += 1
            progress(f"[sync]   WARNING: no reason given; edit the '# reason:' line of "
                  f"{patch_file.relative_to(repo.root)} (verify fails until you do)")
    print(f"refresh: {changed} diff(s) written or removed, {len(targets) - changed} unchanged")
    return 1 if todo else 0


def _refresh_targets(repo: Repo, paths: list[str]) -> list[str]:
    if not paths:
        candidates = set(repo.patches)
        for rel in repo.pristine:
            path = repo.dest / rel
            if not path.exists() or path.read_bytes() != repo.pristine[rel].data:
                candidates.add(rel)
        return sorted(candidates)
    out = []
    prefix = repo.dest_rel + "/"
    for raw in paths:
        p = Path(raw)
        rel = (p.resolve() if p.is_absolute() or p.exists() else repo.root / p).as_posix()
        root = repo.root.as_posix() + "/"
        rel = rel[len(root):] if rel.startswith(root) else raw
        if rel.startswith(prefix):
            rel = rel[len(prefix):]
        if rel not in repo.pristine:
            raise SyncError(f"{raw}: not an upstream file of {repo.dest_rel}/; new files go in git as they are")
        out.append(rel)
    return out

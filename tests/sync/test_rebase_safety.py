"""Issue #17: no verb may undo a rebase in progress, --abort restores patches/ exactly, and no
path deletes a recorded diff before its replacement is written (synthetic releases)."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest

from tests.sync.synthetic import (
    DIST,
    OUR_PATCHES,
    RELEASE_1_FULL,
    REPO_ROOT,
    _our_diff,
    build_wheel,
    make_rebase_repo,
    snapshot,
)
from tests.sync.test_sync_tool import _fails, _json, _ok

sys.path.insert(0, str(REPO_ROOT / "tools"))
from upstream_sync import lock as lockfile  # noqa: E402
from upstream_sync import rebase as rebase_mod  # noqa: E402

PATCHES = f"patches/python/{DIST}"
IN_PROGRESS = "rebase 1.0 -> 2.0 is in progress"


def _files_under(root, rel: str) -> dict[str, bytes]:
    top = root / rel
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(top.rglob("*")) if p.is_file()}


def _empty_dirs(top) -> list[str]:
    return sorted(p.relative_to(top).as_posix() for p in top.rglob("*") if p.is_dir() and not any(p.iterdir()))


def _resolve_engine(fx) -> None:
    engine = fx.pkg / "srt" / "engine.py"
    lines = engine.read_text().split("\n")
    start = next(i for i, line in enumerate(lines) if line.startswith("<<<<<<<"))
    end = next(i for i, line in enumerate(lines) if line.startswith(">>>>>>>"))
    engine.write_text("\n".join(lines[:start] + ["LINE_5 = 500"] + lines[end + 1:]))


def _resolve_all(fx) -> None:
    """What the maintainer does for 1.0 -> 2.0: fix the conflict, port the moved change, and
    delete the diffs of the moved and the deleted file as --continue asks."""
    _resolve_engine(fx)
    (fx.root / PATCHES / "util.py.diff").unlink()
    (fx.root / PATCHES / "legacy/mover.py.diff").unlink()
    mover = fx.pkg / "newplace" / "mover.py"
    mover.write_text(mover.read_text().replace("return 0", "return -1", 1))


# --- A: every verb refuses (or reports) while a rebase is in progress --------------------------

def test_every_verb_refuses_during_a_rebase_and_leaves_the_merge_alone(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    during = snapshot(fx.root)
    assert "<<<<<<< ours" in (fx.pkg / "srt" / "engine.py").read_text()
    for verb in (["materialize"], ["materialize", "--force"], ["verify"], ["refresh"],
                 ["refresh", "core.py", "--reason", "x"], ["cherry-pick", "--from", "2.0", "srt/model_x.py"],
                 ["status", "--against", "2.0"], ["rebase", "--to", "2.0"], ["rebase", "--to", "2.0", "--dry-run"]):
        proc = fx.sync(*verb)
        out = _fails(proc, IN_PROGRESS, "rebase --continue", "rebase --abort")
        assert proc.returncode == 2, (verb, out)
        assert snapshot(fx.root) == during, f"{verb} changed the tree"


def test_status_during_a_rebase_lists_what_is_left(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    out = _fails(fx.sync("status"), "REBASE IN PROGRESS: 1.0 -> 2.0", "to do before 'rebase --continue': 3")
    engine_line = next(line for line in out.splitlines() if "srt/engine.py" in line)
    assert "conflict markers remain" in engine_line
    assert f"delete {PATCHES}/util.py.diff" in out and f"delete {PATCHES}/legacy/mover.py.diff" in out

    _resolve_engine(fx)
    (fx.root / PATCHES / "util.py.diff").unlink()
    proc = fx.sync("status", "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)["rebase"]
    assert [t["file"] for t in report["todo"]] == [f"python/{DIST}/legacy/mover.py"]
    assert {d["file"] for d in report["resolved"]} == {f"python/{DIST}/srt/engine.py", f"python/{DIST}/util.py"}
    assert report["changed_since_start"] == [f"{PATCHES}/util.py.diff: deleted"]


def test_the_pip_build_hook_refuses_during_a_rebase(tmp_path, monkeypatch):
    fx = make_rebase_repo(tmp_path)
    spec = importlib.util.spec_from_file_location("rdna4_backend_t17", REPO_ROOT / "python/_build/rdna4_backend.py")
    hook = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hook)
    monkeypatch.setattr(hook, "REPO_ROOT", fx.root)
    monkeypatch.setattr(hook, "REBASE_STATE", fx.root / ".sync-rebase" / "state.json")
    monkeypatch.setattr(hook, "SYNC_TOOL", fx.root / "tools" / "sync_upstream.py")
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    during = snapshot(fx.root)
    with pytest.raises(SystemExit) as err:
        hook._materialize()
    assert "a rebase 1.0 -> 2.0 is in progress" in str(err.value)
    assert "rebase --continue" in str(err.value) and "Nothing was installed" in str(err.value)
    assert snapshot(fx.root) == during


def test_continue_names_a_tree_that_something_laid_out_again(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    _resolve_all(fx)
    manifest = fx.root / "python" / ".upstream-manifest.json"
    data = json.loads(manifest.read_text())
    manifest.write_text(json.dumps(dict(data, base="1.0")))  # what an older tool's materialize left
    before = _files_under(fx.root, "patches")
    _fails(fx.sync("rebase", "--continue"), "laid out on 1.0, not on 2.0", "rebase --abort")
    assert _files_under(fx.root, "patches") == before


# --- B: --abort restores patches/ and upstream.lock exactly ------------------------------------

def test_abort_restores_deleted_and_edited_diffs_the_lock_and_the_receipt(tmp_path):
    fx = make_rebase_repo(tmp_path)
    receipt = fx.root / "rebases" / "1.0-to-2.0.md"
    receipt.parent.mkdir()
    receipt.write_text("an earlier receipt, committed\n")
    before = snapshot(fx.root)
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    assert (fx.pkg / "newplace").is_dir()
    # what --continue tells the maintainer to do, and then some
    (fx.root / PATCHES / "util.py.diff").unlink()
    (fx.root / PATCHES / "legacy/mover.py.diff").unlink()
    core = fx.root / PATCHES / "core.py.diff"
    core.write_text(core.read_text().replace("our change", "edited"))
    stray = fx.root / PATCHES / "newdir" / "stray.py.diff"
    stray.parent.mkdir()
    stray.write_text("# reason: x\n")
    lock = fx.root / "upstream.lock"
    lock.write_text(lock.read_text() + "# edited\n")
    (fx.pkg / "srt" / "engine.py").write_text("RESOLUTION IN PROGRESS\n")
    cache = fx.pkg / "newplace" / "__pycache__"  # as an import of the 2.0 module leaves it
    cache.mkdir()
    (cache / "mover.cpython-311.pyc").write_bytes(b"\0")

    out = _ok(fx.sync("rebase", "--abort"))
    assert "back on 1.0 with the 5 diff(s)" in out
    assert "--force" not in out, "no --force was passed"
    assert "rebase --abort: saved 1 unrecorded edit(s)" in out
    assert snapshot(fx.root) == before, "patches/, upstream.lock, the receipt and the tree as they were"
    assert _empty_dirs(fx.pkg) == [] and _empty_dirs(fx.root / "patches") == []
    assert not (fx.pkg / "newplace").exists(), "2.0's folder goes, bytecode and all"
    saved = list((fx.root / ".sync-backups").rglob("engine.py"))
    assert [p.read_text() for p in saved] == ["RESOLUTION IN PROGRESS\n"]
    assert _json(fx.sync("status", "--json"))["clean"]
    _ok(fx.sync("verify"))


def test_abort_refuses_a_damaged_snapshot_and_changes_nothing(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    (fx.root / PATCHES / "util.py.diff").unlink()
    kept = fx.root / ".sync-rebase" / "snapshot" / PATCHES / "core.py.diff"
    kept.write_text("damaged\n")
    during = snapshot(fx.root)
    _fails(fx.sync("rebase", "--abort"), "snapshot is missing or damaged", "nothing was changed")
    assert snapshot(fx.root) == during


# --- C: no diff lost on any path; receipts; rewritten files ------------------------------------

def test_dry_run_keeps_a_committed_receipt_when_the_verdicts_are_the_same(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _ok(fx.sync("rebase", "--to", "2.0", "--dry-run"))
    receipt = fx.root / "rebases" / "1.0-to-2.0-dry-run.md"
    text = receipt.read_text()
    dated = "\n".join(line if not line.startswith("- status: ") else "- status: dry run on 2000-01-01: tree untouched"
                      for line in text.split("\n"))
    receipt.write_text(dated)
    out = _ok(fx.sync("rebase", "--to", "2.0", "--dry-run"))
    assert "left as it is" in out and receipt.read_text() == dated
    (fx.root / PATCHES / "core.py.diff").unlink()  # a verdict changes: the receipt is rewritten
    _ok(fx.sync("rebase", "--to", "2.0", "--dry-run"))
    assert "2000-01-01" not in receipt.read_text() and "core.py" not in receipt.read_text()


@pytest.fixture
def resolved(tmp_path, monkeypatch):
    """A 1.0 -> 2.0 rebase with every conflict resolved, and the tool importable in-process."""
    fx = make_rebase_repo(tmp_path)
    for key, value in fx.env().items():
        if key.startswith("SGLANG_RDNA4_"):
            monkeypatch.setenv(key, value)
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    _resolve_all(fx)
    return fx


def test_continue_that_crashes_before_writing_loses_no_diff(resolved, monkeypatch):
    fx = resolved
    before = _files_under(fx.root, "patches")
    lock = (fx.root / "upstream.lock").read_bytes()

    def boom(repo, *args, **kwargs):
        raise RuntimeError("crash between recording and verifying")

    monkeypatch.setattr(rebase_mod, "verify", boom)
    with pytest.raises(RuntimeError):
        rebase_mod.finish(fx.root)
    assert _files_under(fx.root, "patches") == before
    assert (fx.root / "upstream.lock").read_bytes() == lock
    assert (fx.root / ".sync-rebase" / "state.json").exists()


def test_continue_whose_verify_fails_loses_no_diff(resolved):
    fx = resolved
    before = _files_under(fx.root, "patches")
    core = fx.pkg / "core.py"
    core.write_text(core.read_text() + "def broken(:\n")
    _fails(fx.sync("rebase", "--continue"), "does not compile", "patches/ and upstream.lock are untouched")
    assert _files_under(fx.root, "patches") == before


def test_continue_that_crashes_while_writing_is_undone_by_abort(resolved, monkeypatch):
    fx = resolved
    original = _files_under(fx.root / ".sync-rebase" / "snapshot", "patches")

    def boom(lock, path):
        raise RuntimeError("crash after the diffs, before the lock")

    monkeypatch.setattr(rebase_mod, "save", boom)
    with pytest.raises(RuntimeError):
        rebase_mod.finish(fx.root)
    assert (fx.root / PATCHES / "srt/engine.py.diff").read_text().count("LINE_5 = 500") == 1
    _ok(fx.sync("rebase", "--abort"))
    assert _files_under(fx.root, "patches") == original
    assert lockfile.load(fx.root / "upstream.lock").base.version == "1.0"
    _ok(fx.sync("verify"))


BIG = "".join(
    f"def tokenizer_helper_number_{i}(argument_one, argument_two):\n"
    f"    return argument_one + argument_two * {i}  # helper {i}\n\n\n"
    for i in range(12)
)


def test_a_file_whose_code_moved_away_is_a_port_not_a_conflict(tmp_path):
    release_1 = {**RELEASE_1_FULL, "tok.py": BIG}
    ours = BIG.replace("argument_two * 3  #", "argument_two * 30  #")
    fx = make_rebase_repo(tmp_path, patches={"core.py": OUR_PATCHES["core.py"],
                                             "tok.py": _our_diff("tok.py", BIG, ours)}, release_1=release_1)
    stub = "from fakeup.tokenizers.impl import *  # noqa: F401,F403 (moved)\n"
    build_wheel(fx.wheels, "4.0", {**release_1, "tok.py": stub, "tokenizers/__init__.py": "",
                                   "tokenizers/impl.py": BIG})
    out = _fails(fx.sync("rebase", "--to", "4.0"), "upstream rewrote the file",
                 f"python/{DIST}/tokenizers/impl.py", "laid out as 4.0 ships it")
    assert (fx.pkg / "tok.py").read_text() == stub, "the stub, not a conflict over the whole file"
    assert "<<<<<<<" not in out
    _fails(fx.sync("rebase", "--continue"), f"delete {PATCHES}/tok.py.diff")
    impl = fx.pkg / "tokenizers" / "impl.py"
    impl.write_text(impl.read_text().replace("argument_two * 3  #", "argument_two * 30  #"))
    (fx.root / PATCHES / "tok.py.diff").unlink()
    _ok(fx.sync("rebase", "--continue"))
    ported = (fx.root / PATCHES / "tokenizers/impl.py.diff").read_text()
    assert "# reason: our change to tok.py" in ported and "+    return argument_one + argument_two * 30" in ported
    assert not (fx.root / PATCHES / "tok.py.diff").exists()
    _ok(fx.sync("verify"))

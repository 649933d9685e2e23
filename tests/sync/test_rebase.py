"""rebase, cherry-pick and status --against on synthetic releases: every verdict, --continue, --abort."""

from __future__ import annotations

from tests.sync.synthetic import DIST, OUR_PATCHES, make_rebase_repo, snapshot
from tests.sync.test_sync_tool import _fails, _json, _ok

PATCHES_DIR = f"patches/python/{DIST}"


def test_preview_gives_a_verdict_per_change_and_touches_nothing(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _ok(fx.sync("cherry-pick", "--from", "2.0", "srt/model_x.py"))
    before = snapshot(fx.root)
    report = _json(fx.sync("status", "--against", "2.0", "--json"))
    verdicts = {v["file"].split(f"python/{DIST}/")[1]: v["verdict"] for v in report["verdicts"]}
    assert verdicts == {
        "core.py": "clean",
        "srt/engine.py": "conflict",
        "__init__.py": "upstream now contains it",
        "util.py": "upstream deleted the file",
        "legacy/mover.py": "upstream moved the file",
        "srt/model_x.py": "cherry-pick now in base",
    }
    moved = next(v for v in report["verdicts"] if v["verdict"] == "upstream moved the file")
    assert "newplace/mover.py" in moved["detail"]
    assert snapshot(fx.root) == before
    md = _ok(fx.sync("status", "--against", "2.0", "--markdown"))
    assert "| diff | `python/fakeup/srt/engine.py` | conflict |" in md


def test_collision_with_a_new_upstream_file_is_reported_and_blocks_the_rebase(tmp_path):
    fx = make_rebase_repo(tmp_path)
    report = _json(fx.sync("status", "--against", "3.0", "--json"))
    assert {"kind": "new file", "file": "python/fakeup/srt/ours.py",
            "verdict": "new upstream file collides"}.items() <= next(
        v for v in report["verdicts"] if v["kind"] == "new file").items()
    before = snapshot(fx.root)
    _fails(fx.sync("rebase", "--to", "3.0"), "python/fakeup/srt/ours.py", "Rename ours")
    assert snapshot(fx.root) == before


def test_conflict_then_continue(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _ok(fx.sync("cherry-pick", "--from", "2.0", "srt/model_x.py"))
    out = _fails(fx.sync("rebase", "--to", "2.0"), "need you", "srt/engine.py", "conflict")
    assert "rebase --continue" in out
    receipt = fx.root / "rebases" / "1.0-to-2.0.md"
    assert "- status: in progress" in receipt.read_text()
    engine = fx.pkg / "srt" / "engine.py"
    assert "<<<<<<< ours (sglang-rdna4)" in engine.read_text()
    assert (fx.root / "upstream.lock").read_text().count('version = "1.0"') == 1

    _fails(fx.sync("rebase", "--continue"), "conflict markers remain", "srt/engine.py",
           "util.py", "upstream deleted the file", "legacy/mover.py")

    lines = engine.read_text().split("\n")
    start = lines.index(next(l for l in lines if l.startswith("<<<<<<<")))
    end = lines.index(next(l for l in lines if l.startswith(">>>>>>>")))
    engine.write_text("\n".join(lines[:start] + ["LINE_5 = 500"] + lines[end + 1:]))
    (fx.root / PATCHES_DIR / "util.py.diff").unlink()
    (fx.root / PATCHES_DIR / "legacy/mover.py.diff").unlink()
    mover = fx.pkg / "newplace" / "mover.py"
    mover.write_text(mover.read_text().replace("return 0", "return -1", 1))

    out = _ok(fx.sync("rebase", "--continue"))
    assert "rebase complete" in out
    lock = (fx.root / "upstream.lock").read_text()
    assert 'version = "2.0"' in lock and "cherry_pick" not in lock, "the picked file is in 2.0: retired"
    patches = sorted(p.relative_to(fx.root / PATCHES_DIR).as_posix()
                     for p in (fx.root / PATCHES_DIR).rglob("*.diff"))
    assert patches == ["core.py.diff", "newplace/mover.py.diff", "srt/engine.py.diff"]
    engine_patch = (fx.root / PATCHES_DIR / "srt/engine.py.diff").read_text()
    assert "# reason: our change to srt/engine.py" in engine_patch
    assert "-LINE_5 = 'five'\n+LINE_5 = 500\n" in engine_patch
    assert "status: completed" in receipt.read_text()
    _ok(fx.sync("verify"))
    assert not (fx.root / ".sync-rebase").exists()


def test_abort_restores_the_tree_byte_for_byte(tmp_path):
    fx = make_rebase_repo(tmp_path)
    before = snapshot(fx.root)
    _fails(fx.sync("rebase", "--to", "2.0"), "need you")
    assert snapshot(fx.root) != before
    engine = fx.pkg / "srt" / "engine.py"
    engine.write_text("RESOLUTION IN PROGRESS\n")
    _ok(fx.sync("rebase", "--abort"))
    assert snapshot(fx.root) == before
    saved = list((fx.root / ".sync-backups").rglob("engine.py"))
    assert [p.read_text() for p in saved] == ["RESOLUTION IN PROGRESS\n"], "work is set aside, not lost"
    _ok(fx.sync("verify"))


def test_a_clean_rebase_finishes_in_one_command(tmp_path):
    fx = make_rebase_repo(tmp_path, patches={"core.py": OUR_PATCHES["core.py"]})
    out = _ok(fx.sync("rebase", "--to", "2.0"))
    assert "rebase complete" in out
    assert 'version = "2.0"' in (fx.root / "upstream.lock").read_text()
    core = (fx.pkg / "core.py").read_text()
    assert 'return "hi " + name' in core and "return b * a  # 2.0" in core
    _ok(fx.sync("verify"))


def test_dry_run_writes_a_receipt_and_touches_nothing_else(tmp_path):
    fx = make_rebase_repo(tmp_path)
    before = snapshot(fx.root)
    _ok(fx.sync("rebase", "--to", "2.0", "--dry-run"))
    after = snapshot(fx.root)
    receipt = "rebases/1.0-to-2.0-dry-run.md"
    assert set(after) - set(before) == {receipt}
    assert {k: v for k, v in after.items() if k != receipt} == before
    text = after[receipt][0].decode()
    for verdict in ("clean", "conflict", "upstream now contains it", "upstream deleted the file"):
        assert verdict in text


def test_cherry_pick_is_recorded_and_rechecked_by_verify(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _ok(fx.sync("cherry-pick", "--from", "2.0", "python/fakeup/srt/model_x.py"))
    assert (fx.pkg / "srt" / "model_x.py").read_text() == "class ModelX:\n    pass\n"
    lock = (fx.root / "upstream.lock").read_text()
    assert 'path = "srt/model_x.py"' in lock and 'version = "2.0"' in lock
    assert "python/fakeup/srt/model_x.py" not in fx.git("status", "--porcelain", "-uall")
    _ok(fx.sync("verify"))
    (fx.root / "upstream.lock").write_text(lock.replace(lock.split('sha256 = "')[2][:64], "0" * 64))
    _fails(fx.sync("verify"), "cherry-pick srt/model_x.py", "re-run cherry-pick")


def test_cherry_pick_refuses_a_file_we_patch(tmp_path):
    fx = make_rebase_repo(tmp_path)
    _fails(fx.sync("cherry-pick", "--from", "2.0", "core.py"), "has a diff against 1.0")

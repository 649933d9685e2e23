"""tools/sync_upstream.py against synthetic upstream releases built as wheels."""

from __future__ import annotations

import json
import os

import pytest

from tests.sync.synthetic import DIST, Fixture, make_repo

CORE_PATCH = """\
--- a/python/fakeup/core.py
+++ b/python/fakeup/core.py
@@ -1,5 +1,5 @@
 def greet(name):
-    return "hello " + name
+    return "hi " + name
 
 
 def add(a, b):
"""


@pytest.fixture
def fx(tmp_path) -> Fixture:
    return make_repo(tmp_path)


def _ok(proc) -> str:
    """stdout and stderr (progress notes) of a successful run."""
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout + proc.stderr


def _json(proc):
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def _fails(proc, *needles: str) -> str:
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    for needle in needles:
        assert needle in out, f"{needle!r} not in:\n{out}"
    return out


def test_materialize_lays_out_upstream_and_excludes_it(fx):
    fx.write_patch("core.py", CORE_PATCH)
    out = _ok(fx.sync("materialize"))
    assert "laying out 5 upstream files" in out
    assert 'return "hi " + name' in (fx.pkg / "core.py").read_text()
    assert os.access(fx.pkg / "bin" / "run.sh", os.X_OK)
    assert not os.access(fx.pkg / "core.py", os.X_OK)
    # upstream files are ignored by git; our own file and the patch are not
    untracked = {line[3:] for line in fx.git("status", "--porcelain", "-uall").splitlines()}
    assert untracked == {"patches/python/fakeup/core.py.diff"}
    # idempotent
    assert "0 written, 5 already current" in _ok(fx.sync("materialize"))


def test_verify_passes_on_a_good_tree(fx):
    fx.write_patch("core.py", CORE_PATCH)
    _ok(fx.sync("materialize"))
    out = _ok(fx.sync("verify"))
    assert "1 diff(s) apply exactly and only once" in out
    assert "2 touched module(s) import" in out


def test_wheel_hash_mismatch_is_refused(fx):
    _ok(fx.sync("materialize"))
    cached = fx.cache / "wheels" / f"{DIST}-1.0-py3-none-any.whl"
    cached.write_bytes(cached.read_bytes() + b"corrupt")
    for verb in ("materialize", "verify"):
        _fails(fx.sync(verb), str(cached), "does not match upstream.lock", "delete it")


def test_verify_names_file_and_hunk_of_a_diff_that_does_not_apply(fx):
    _ok(fx.sync("materialize"))
    fx.write_patch("core.py", CORE_PATCH.replace('"hello "', '"howdy "'))
    _fails(fx.sync("verify"), "patches/python/fakeup/core.py.diff", "hunk 1 (@@ -1,5 +1,5 @@)",
           "does not apply")
    _fails(fx.sync("materialize"), "core.py.diff", "hunk 1")


def test_verify_rejects_a_diff_that_applies_twice(fx):
    fx.write_patch("srt/engine.py", (
        "--- a/python/fakeup/srt/engine.py\n+++ b/python/fakeup/srt/engine.py\n"
        "@@ -0,0 +1 @@\n+import os\n"
    ))
    _ok(fx.sync("materialize"))
    _fails(fx.sync("verify"), "engine.py.diff", "applies a second time")


def test_unrecorded_edit_fails_verify_and_status_and_materialize_refuses(fx):
    _ok(fx.sync("materialize"))
    core = fx.pkg / "core.py"
    core.write_text(core.read_text().replace("a + b", "b + a"))
    _fails(fx.sync("verify"), "python/fakeup/core.py", "not recorded in patches/", "refresh")
    _fails(fx.sync("status"), "NOT CLEAN", "python/fakeup/core.py")
    _fails(fx.sync("materialize"), "refusing to overwrite", "python/fakeup/core.py", "--force")
    assert "b + a" in core.read_text(), "materialize must not touch an unrecorded edit"


def test_materialize_force_sets_the_edit_aside_instead_of_losing_it(fx):
    _ok(fx.sync("materialize"))
    core = fx.pkg / "core.py"
    core.write_text("EDITED = True\n")
    out = _ok(fx.sync("materialize", "--force"))
    assert "saved 1 unrecorded edit" in out
    backups = list((fx.root / ".sync-backups").rglob("core.py"))
    assert len(backups) == 1 and backups[0].read_text() == "EDITED = True\n"
    assert "def greet" in core.read_text()


def test_verify_names_a_deleted_tracked_new_file(fx):
    _ok(fx.sync("materialize"))
    (fx.pkg / "srt" / "ours.py").unlink()
    _fails(fx.sync("verify"), "python/fakeup/srt/ours.py", "tracked new file is missing", "git checkout")


def test_verify_names_an_untracked_new_file(fx):
    _ok(fx.sync("materialize"))
    (fx.pkg / "stray.py").write_text("X = 1\n")
    _fails(fx.sync("verify"), "python/fakeup/stray.py", "not tracked by git")


def test_verify_names_a_module_that_no_longer_compiles(fx):
    _ok(fx.sync("materialize"))
    (fx.pkg / "srt" / "ours.py").write_text("def broken(:\n")
    fx.git("add", "-A")
    _fails(fx.sync("verify"), "python/fakeup/srt/ours.py", "does not compile", "line 1")


def test_verify_names_a_module_that_no_longer_imports(fx):
    _ok(fx.sync("materialize"))
    (fx.pkg / "srt" / "ours.py").write_text("from fakeup.core import subtract\n")
    fx.git("add", "-A")
    _fails(fx.sync("verify"), "fakeup.srt.ours", "does not import", "subtract")


def test_refresh_records_an_edit_then_verify_passes(fx):
    _ok(fx.sync("materialize"))
    core = fx.pkg / "core.py"
    core.write_text(core.read_text().replace("a * b", "b * a"))
    _ok(fx.sync("refresh", "--reason", "commute", "--upstream", "candidate"))
    patch = (fx.root / "patches/python/fakeup/core.py.diff").read_text()
    assert patch.startswith("# reason: commute\n# upstream: candidate\n")
    assert "-    return a * b\n+    return b * a\n" in patch
    _ok(fx.sync("verify"))
    # a second edit of the same file: refresh diffs against pristine, keeps the reason
    core.write_text(core.read_text().replace("a + b", "b + a"))
    _ok(fx.sync("refresh"))
    patch = (fx.root / "patches/python/fakeup/core.py.diff").read_text()
    assert "# reason: commute" in patch and "b + a" in patch and "b * a" in patch
    _ok(fx.sync("verify"))


def test_refresh_without_reason_leaves_a_todo_that_verify_rejects(fx):
    _ok(fx.sync("materialize"))
    core = fx.pkg / "core.py"
    core.write_text(core.read_text() + "\nEXTRA = 1\n")
    _fails(fx.sync("refresh"), "no reason given")
    assert (fx.root / "patches/python/fakeup/core.py.diff").exists(), "the edit must be recorded"
    _fails(fx.sync("verify"), "core.py.diff", "no reason line")


def test_refresh_drops_a_diff_once_the_file_equals_upstream(fx):
    fx.write_patch("core.py", CORE_PATCH)
    _ok(fx.sync("materialize"))
    core = fx.pkg / "core.py"
    core.write_text(core.read_text().replace('"hi "', '"hello "'))
    out = _ok(fx.sync("refresh"))
    assert "equals upstream again" in out
    assert not (fx.root / "patches/python/fakeup/core.py.diff").exists()


def test_a_diff_for_a_file_upstream_does_not_have_is_refused(fx):
    fx.write_patch("nothere.py", CORE_PATCH.replace("core.py", "nothere.py"))
    _fails(fx.sync("materialize"), "nothere.py", "not an upstream file")


def test_status_json_reports_diffs_reasons_and_line_counts(fx):
    fx.write_patch("core.py", CORE_PATCH, reason="friendlier greeting", status="candidate")
    _ok(fx.sync("materialize"))
    report = _json(fx.sync("status", "--json"))
    assert report["clean"] is True
    (diff,) = report["diffs"]
    assert diff == {
        "file": "python/fakeup/core.py",
        "patch": "patches/python/fakeup/core.py.diff",
        "reason": "friendlier greeting",
        "upstream": "candidate",
        "added": 1,
        "removed": 1,
    }
    assert report["new_files"] == [{"file": "python/fakeup/srt/ours.py", "lines": 5}]
    assert report["totals"]["upstream_files_touched"] == 1
    assert report["totals"]["additive_share"] == round(5 / 6, 4)
    table = _ok(fx.sync("status"))
    assert "friendlier greeting" in table and "clean:" in table


def test_git_tracked_upstream_file_is_refused(fx):
    _ok(fx.sync("materialize"))
    fx.git("add", "-f", "python/fakeup/core.py")
    _fails(fx.sync("materialize"), "git tracks 1 file(s) that are upstream files", "core.py")


def test_bad_lock_is_named(fx):
    (fx.root / "upstream.lock").write_text("[base]\nversion = 1\n")
    _fails(fx.sync("status"), "upstream.lock", "distribution")

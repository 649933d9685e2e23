"""The real delta against the pinned sglang 0.5.10 wheel: the replay gate and the no-upstream-in-git rule."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pytest

from tests.sync.synthetic import REPO_ROOT, TOOL

sys.path.insert(0, str(REPO_ROOT / "tools"))
from upstream_sync import lock as lockfile  # noqa: E402
from upstream_sync import wheels  # noqa: E402


def _sync(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), *args], capture_output=True, text=True,
                          cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def pinned_wheel():
    lock = lockfile.load(REPO_ROOT / "upstream.lock")
    assert lock.base.version == "0.5.10"
    assert lock.base.sha256 == "ac8855a5d57dac8831fee526bca5212f1ae451f378e2ab08b3baecbc4deb4076"
    return wheels.fetch(lock.base)


def test_verify_passes_on_the_working_tree():
    proc = _sync("verify")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "byte for byte" in proc.stdout


def test_status_json_lists_every_diff_with_reason_and_counts():
    proc = _sync("status", "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["clean"] and report["base"]["version"] == "0.5.10"
    patches = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "patches").rglob("*.diff"))
    assert sorted(d["patch"] for d in report["diffs"]) == patches
    for diff in report["diffs"]:
        assert diff["reason"] and not diff["reason"].startswith("TODO"), diff
        assert diff["upstream"] in ("carry", "candidate") or diff["upstream"].startswith("upstreamed-in")
        assert diff["added"] + diff["removed"] > 0


def test_git_tracks_no_upstream_file(pinned_wheel):
    with zipfile.ZipFile(pinned_wheel) as zf:
        upstream_paths = {i.filename for i in zf.infolist() if not i.is_dir()}
        upstream_hashes = {
            wheels.sha256_of(zf.read(i)) for i in zf.infolist()
            if i.filename.endswith(".py") and i.file_size > 200
        }
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO_ROOT, capture_output=True,
                             text=True, check=True).stdout.split("\0")
    if tracked == [""]:
        pytest.skip("not a git checkout")
    by_path = [f for f in tracked if f.startswith("python/") and f[len("python/"):] in upstream_paths]
    by_content = [
        f for f in tracked
        if f and (REPO_ROOT / f).is_file()
        and wheels.sha256_of((REPO_ROOT / f).read_bytes()) in upstream_hashes
    ]
    assert by_path == [] and by_content == []


@pytest.mark.network
@pytest.mark.parametrize("version", ["0.5.11", "0.5.12"])
def test_preview_of_our_delta_on_later_releases(version):
    """Every change gets a verdict on a real later release (the verdicts themselves may vary)."""
    proc = _sync("status", "--against", version, "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["to"] == version
    diffs = {v["file"] for v in report["verdicts"] if v["kind"] == "diff"}
    ours = {
        "python/" + p.relative_to(REPO_ROOT / "patches" / "python").as_posix()[: -len(".diff")]
        for p in (REPO_ROOT / "patches").rglob("*.diff")
    }
    assert diffs == ours
    known = {"clean", "conflict", "upstream now contains it", "upstream deleted the file",
             "upstream moved the file", "upstream rewrote the file", "new upstream file collides", "cherry-pick now in base",
             "cherry-pick kept"}
    assert all(v["verdict"] in known for v in report["verdicts"])

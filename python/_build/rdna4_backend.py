"""PEP 517 backend for the `sglang` distribution of sglang-rdna4.

It lays out the pinned upstream tree (tools/sync_upstream.py materialize) before
setuptools builds, so `pip install -e python` works from a fresh clone.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import (  # noqa: F401  (re-exported hooks)
    get_requires_for_build_editable,
    get_requires_for_build_sdist,
    get_requires_for_build_wheel,
    prepare_metadata_for_build_editable,
    prepare_metadata_for_build_wheel,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SYNC_TOOL = REPO_ROOT / "tools" / "sync_upstream.py"


REBASE_STATE = REPO_ROOT / ".sync-rebase" / "state.json"


def _refuse_during_rebase() -> None:
    """materialize would lay the old base back over a rebase's merged tree and resolutions."""
    if not REBASE_STATE.is_file():
        return
    versions = ""
    try:
        state = json.loads(REBASE_STATE.read_text())
        versions = f" {state.get('from', '?')} -> {state.get('to', '?')}"
    except (OSError, ValueError):
        pass
    raise SystemExit(
        f"sglang-rdna4: a rebase{versions} is in progress in {REPO_ROOT} ({REBASE_STATE.parent.name}/ "
        f"exists). Installing now would lay the old upstream base back over the merged files and "
        f"your conflict resolutions. Finish it with 'python {SYNC_TOOL.relative_to(REPO_ROOT)} rebase "
        f"--continue' (or undo it with 'rebase --abort'), then install again. Nothing was installed."
    )


def _materialize() -> None:
    _refuse_during_rebase()
    if not SYNC_TOOL.is_file():
        raise SystemExit(
            f"sglang-rdna4: {SYNC_TOOL} not found. Build from a full clone of the repository: "
            f"the upstream tree is laid out by that tool."
        )
    print(f"sglang-rdna4: laying out upstream SGLang with {SYNC_TOOL.name} materialize", flush=True)
    proc = subprocess.run([sys.executable, str(SYNC_TOOL), "materialize"], cwd=REPO_ROOT)
    if proc.returncode != 0:
        raise SystemExit(
            f"sglang-rdna4: '{SYNC_TOOL.name} materialize' failed (exit {proc.returncode}); "
            f"its message above says what to fix. Nothing was installed."
        )


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    _materialize()
    return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    _materialize()
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    raise SystemExit(
        "sglang-rdna4 ships no sdist: upstream code may not be redistributed from this "
        "repository. Install from a clone with `pip install -e python`."
    )

#!/usr/bin/env python3
"""sglang-rdna4's interface to upstream SGLang: lay out the pinned release, check and
record our delta.

  materialize   fetch the pinned wheel(s), check sha256, lay out upstream + our diffs
  verify        the replay gate: pristine + our delta must equal the working tree
  status        the divergence report (table, or --json); during a rebase, what is left to resolve
  refresh       record edits of upstream files back into patches/
  rebase        move our delta onto another release (--to VERSION [--dry-run] | --continue | --abort);
                while one is in progress the other verbs refuse, and --abort restores patches/
                and upstream.lock exactly as they were at --to
  cherry-pick   take files from a later release (--from VERSION PATH...), recorded in upstream.lock

Standard library and pip only: it runs before anything else is installed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from upstream_sync import SyncError  # noqa: E402
from upstream_sync import commands, rebase  # noqa: E402
from upstream_sync.state import in_progress, refuse_during_rebase  # noqa: E402
from upstream_sync.tree import Repo  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sync_upstream.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="repository root (default: the one holding this tool)")
    verbs = parser.add_subparsers(dest="verb", required=True)
    m = verbs.add_parser("materialize", help="lay out pinned upstream + our diffs")
    m.add_argument("--force", action="store_true",
                   help="set unrecorded edits aside in .sync-backups/ instead of refusing")
    v = verbs.add_parser("verify", help="replay pristine + delta and compare with the tree")
    v.add_argument("--no-import", action="store_true", help="skip the import smoke test")
    s = verbs.add_parser("status", help="divergence report; exit 1 while an edit is unrecorded")
    fmt = s.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true")
    fmt.add_argument("--markdown", action="store_true", help="for release notes")
    s.add_argument("--against", metavar="VERSION",
                   help="preview how each change would fare on that release (tree untouched)")
    r = verbs.add_parser("refresh", help="record edits of upstream files into patches/")
    r.add_argument("paths", nargs="*", help="upstream files to record (default: every edited one)")
    r.add_argument("--reason", help="the '# reason:' line for the diff(s) written")
    r.add_argument("--upstream", dest="upstream_status",
                   help="'carry', 'candidate' or 'upstreamed-in <version>'")
    rb = verbs.add_parser("rebase", help="three-way merge our delta onto another release")
    what = rb.add_mutually_exclusive_group(required=True)
    what.add_argument("--to", metavar="VERSION", help="the release to move onto")
    what.add_argument("--continue", dest="cont", action="store_true", help="finish after resolving")
    what.add_argument("--abort", action="store_true", help="restore the tree as it was")
    rb.add_argument("--dry-run", action="store_true", help="with --to: write the receipt only")
    rb.add_argument("--git", metavar="URL", help=argparse.SUPPRESS)
    cp = verbs.add_parser("cherry-pick", help="take files from a later release")
    cp.add_argument("--from", dest="version", required=True, metavar="VERSION")
    cp.add_argument("paths", nargs="+", help="paths inside the package, e.g. srt/models/x.py")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        repo = Repo(args.root)
        # While a rebase is in progress every verb but rebase and status refuses: each would
        # act on the old base (upstream.lock moves only at 'rebase --continue').
        if args.verb in ("materialize", "verify", "refresh"):
            refuse_during_rebase(repo.root, args.verb)
        if args.verb == "materialize":
            return commands.materialize(repo, force=args.force)
        if args.verb == "verify":
            return commands.verify(repo, import_smoke=not args.no_import)
        if args.verb == "status":
            fmt = "json" if args.json else "markdown" if args.markdown else "table"
            if args.against:
                return rebase.preview(repo, args.against, fmt)
            if in_progress(repo.root) is not None:
                return rebase.rebase_status(repo.root, fmt)
            return commands.status(repo, fmt)
        if args.verb == "refresh":
            return commands.refresh(repo, args.paths, args.reason, args.upstream_status)
        if args.verb == "rebase":
            if args.git:
                raise SyncError("rebase --git is not supported yet: rebase onto a release of the "
                                "package index with --to VERSION")
            if args.cont:
                return rebase.finish(repo.root)
            if args.abort:
                return rebase.abort(repo.root)
            return rebase.start(repo, args.to, dry_run=args.dry_run)
        if args.verb == "cherry-pick":
            return rebase.cherry_pick(repo, args.version, args.paths)
    except SyncError as err:
        print(f"sync_upstream {args.verb}: error: {err}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())

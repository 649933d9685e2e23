"""How each of our changes fares on another upstream release: the verdicts of a rebase."""

from __future__ import annotations

import difflib
import posixpath
from dataclasses import asdict, dataclass, field

from upstream_sync import wheels
from upstream_sync.lock import CherryPick, Release
from upstream_sync.merge3 import merge3
from upstream_sync.tree import Repo

CLEAN = "clean"
CONFLICT = "conflict"
UPSTREAMED = "upstream now contains it"
DELETED = "upstream deleted the file"
MOVED = "upstream moved the file"
REWRITTEN = "upstream rewrote the file"
COLLISION = "new upstream file collides"
KEPT = "new file kept"
PICK_IN_BASE = "cherry-pick now in base"
PICK_KEPT = "cherry-pick kept"
NEEDS_WORK = {CONFLICT, DELETED, MOVED, REWRITTEN, COLLISION}
# When the new upstream file keeps less than this share of the old one (by lines), a merge
# would be one conflict around the whole file: the code moved, and the change must be ported.
REWRITE_SIMILARITY = 0.25


@dataclass
class Verdict:
    kind: str  # "diff", "new file" or "cherry-pick"
    file: str  # repo-relative path
    verdict: str
    detail: str = ""
    reason: str = ""
    upstream: str = ""
    rel: str = field(default="", repr=False)  # path inside the package folder
    moved_to: str = field(default="", repr=False)  # package-relative, for MOVED

    def row(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("rel", "moved_to")}


@dataclass
class Plan:
    old: Release
    new: Release
    verdicts: list[Verdict]
    new_files: dict[str, bytes]  # the new upstream tree (package-relative), picks applied
    merged: dict[str, str]  # package-relative path -> merged text (clean or with markers)
    kept_picks: list[CherryPick]

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.verdicts:
            out[v.verdict] = out.get(v.verdict, 0) + 1
        return out

    @property
    def needs_work(self) -> list[Verdict]:
        return [v for v in self.verdicts if v.verdict in NEEDS_WORK]


def _guess_move(rel: str, old_text: str, candidates: dict[str, wheels.Member]) -> str | None:
    name = posixpath.basename(rel)
    best, best_ratio = None, 0.0
    for other, member in candidates.items():
        if posixpath.basename(other) != name:
            continue
        try:
            text = member.data.decode("utf-8")
        except UnicodeDecodeError:
            continue
        ratio = difflib.SequenceMatcher(None, old_text, text, autojunk=False).quick_ratio()
        if ratio > best_ratio:
            best, best_ratio = other, ratio
    return best if best_ratio >= 0.6 else None


def _line_set(text: str) -> set[str]:
    """Distinctive lines (stripped, long enough not to be boilerplate) of a source file."""
    return {s for s in (line.strip() for line in text.split("\n")) if len(s) >= 24}


def _similarity(old: str, new: str) -> float:
    a, b = old.split("\n"), new.split("\n")
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def _guess_new_homes(rel: str, old_text: str, new_text: str, tree: dict[str, bytes]) -> list[str]:
    """Files of the new release holding most of the lines that left `rel` (at most 3, most first)."""
    gone = _line_set(old_text) - _line_set(new_text)
    if not gone:
        return []
    hits = []
    for other, data in tree.items():
        if other == rel or not other.endswith(".py"):
            continue
        try:
            found = len(gone & _line_set(data.decode("utf-8")))
        except UnicodeDecodeError:
            continue
        if found * 50 >= len(gone):  # 2% of the departed lines at least (a split file spreads them)
            hits.append((found, other))
    return [other for _, other in sorted(hits, key=lambda h: (-h[0], h[1]))[:3]]


def make_plan(repo: Repo, new: Release) -> Plan:
    package = repo.lock.package
    upstream_new = wheels.read_package(wheels.fetch(new), package)
    added_upstream = {rel: m for rel, m in upstream_new.items() if rel not in repo.pristine}
    verdicts: list[Verdict] = []
    kept_picks: list[CherryPick] = []
    new_tree = {rel: m.data for rel, m in upstream_new.items()}

    for pick in repo.lock.cherry_picks:
        shown = f"{repo.dest_rel}/{pick.path}"
        in_base = upstream_new.get(pick.path)
        if in_base is not None and wheels.sha256_of(in_base.data) == pick.sha256:
            verdicts.append(Verdict("cherry-pick", shown, PICK_IN_BASE,
                                    f"{new.version} ships the file picked from {pick.release.version}",
                                    rel=pick.path))
            continue
        detail = (f"from {pick.release.version}; {new.version} has another version of it"
                  if in_base is not None else f"from {pick.release.version}; not in {new.version}")
        verdicts.append(Verdict("cherry-pick", shown, PICK_KEPT, detail, rel=pick.path))
        kept_picks.append(pick)
        new_tree[pick.path] = repo.pristine[pick.path].data

    merged: dict[str, str] = {}
    for rel, patch in sorted(repo.patches.items()):
        shown = f"{repo.dest_rel}/{rel}"
        v = Verdict("diff", shown, "", reason=patch.reason, upstream=patch.upstream, rel=rel)
        verdicts.append(v)
        if rel not in new_tree:
            target = _guess_move(rel, repo.pristine_text(rel), added_upstream)
            v.verdict, v.detail = (MOVED, f"probably to {repo.dest_rel}/{target}") if target else (DELETED, "")
            v.moved_to = target or ""
            continue
        theirs = new_tree[rel].decode("utf-8")
        old_text = repo.pristine_text(rel)
        if _similarity(old_text, theirs) < REWRITE_SIMILARITY:
            homes = _guess_new_homes(rel, old_text, theirs, new_tree)
            where = (", ".join(f"{repo.dest_rel}/{h}" for h in homes)) if homes else "no single file"
            v.verdict = REWRITTEN
            v.detail = (f"{len(old_text.splitlines())} -> {len(theirs.splitlines())} lines; the code "
                        f"probably moved to {where}; laid out as {new.version} ships it")
            v.moved_to = homes[0] if homes else ""
            merged[rel] = theirs
            continue
        text, conflicts = merge3(repo.expected_text(rel), repo.pristine_text(rel), theirs, shown)
        merged[rel] = text
        if conflicts:
            v.verdict, v.detail = CONFLICT, f"{conflicts} conflict(s) left inline"
        elif text == theirs:
            v.verdict, v.detail = UPSTREAMED, "the merge equals the new upstream file: drop the diff"
        else:
            v.verdict = CLEAN

    for rel in sorted(repo.new_files()):
        shown = f"{repo.dest_rel}/{rel}"
        if rel in upstream_new:
            verdicts.append(Verdict("new file", shown, COLLISION,
                                    f"{new.version} adds a file at this path: rename ours", rel=rel))
    return Plan(old=repo.lock.base, new=new, verdicts=verdicts, new_files=new_tree,
                merged=merged, kept_picks=kept_picks)


def plan_markdown(plan: Plan, title: str, status_line: str) -> str:
    counts = ", ".join(f"{n} {k}" for k, n in sorted(plan.counts().items())) or "nothing to carry"
    out = [
        f"# {title}",
        "",
        f"- from: sglang {plan.old.version} (`{plan.old.wheel}`, sha256 `{plan.old.sha256}`)",
        f"- to: sglang {plan.new.version} (`{plan.new.wheel}`, sha256 `{plan.new.sha256}`)",
        f"- status: {status_line}",
        f"- verdicts: {counts}",
        "",
        "| kind | file | verdict | detail | upstream status | reason |",
        "|---|---|---|---|---|---|",
    ]
    for v in plan.verdicts:
        cells = [v.kind, f"`{v.file}`", v.verdict, v.detail, v.upstream, v.reason]
        out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    if plan.needs_work:
        out += ["", "## To do before `rebase --continue`", ""]
        for v in plan.needs_work:
            out.append(f"- `{v.file}`: {v.verdict}" + (f" ({v.detail})" if v.detail else ""))
    return "\n".join(out) + "\n"


def plan_table(plan: Plan) -> str:
    rows = [("kind", "file", "verdict", "detail")] + [(v.kind, v.file, v.verdict, v.detail) for v in plan.verdicts]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{plan.old.version} -> {plan.new.version}"]
    for r in rows:
        lines.append("  " + "  ".join(r[i].ljust(widths[i]) for i in range(3)) + "  " + r[3])
    lines.append("verdicts: " + (", ".join(f"{n} {k}" for k, n in sorted(plan.counts().items())) or "none"))
    return "\n".join(lines)

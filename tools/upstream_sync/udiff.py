"""Unified diffs made and applied strictly: exact position, exact context, no fuzz.

Our diffs are always taken against the pinned pristine upstream file, so a hunk must
match at exactly the line it names. Anything else is an error that names the hunk.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

NO_NEWLINE = "\\ No newline at end of file"
_HUNK_RE = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


from upstream_sync import SyncError


class PatchError(SyncError):
    """A diff that is malformed or does not apply; the message names file and hunk."""


@dataclass
class Hunk:
    old_start: int  # 1-based, as written in the header
    old_len: int
    new_start: int
    new_len: int
    lines: list[str] = field(default_factory=list)  # each starts with ' ', '-' or '+', keeps its EOL

    @property
    def header(self) -> str:
        return f"@@ -{self.old_start},{self.old_len} +{self.new_start},{self.new_len} @@"

    def old_lines(self) -> list[str]:
        return [line[1:] for line in self.lines if line[0] in " -"]

    def new_lines(self) -> list[str]:
        return [line[1:] for line in self.lines if line[0] in " +"]


def split_lines(text: str) -> list[str]:
    """Lines split on '\\n' only, endings kept (a last line may lack one).

    str.splitlines() also splits on form feeds and other separators, which diff
    and git do not treat as line ends.
    """
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


def make_diff(old: str, new: str, path: str, context: int = 3) -> str:
    """Unified diff from `old` to `new`, labelled a/<path> and b/<path>; '' if equal."""
    if old == new:
        return ""
    a, b = split_lines(old), split_lines(new)
    out = [f"--- a/{path}\n", f"+++ b/{path}\n"]
    matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        i1, i2 = group[0][1], group[-1][2]
        j1, j2 = group[0][3], group[-1][4]
        old_start = i1 + 1 if i2 > i1 else i1
        new_start = j1 + 1 if j2 > j1 else j1
        out.append(f"@@ -{old_start},{i2 - i1} +{new_start},{j2 - j1} @@\n")
        for tag, ai1, ai2, bj1, bj2 in group:
            if tag == "equal":
                out.extend(_emit(" ", a[ai1:ai2]))
                continue
            out.extend(_emit("-", a[ai1:ai2]))
            out.extend(_emit("+", b[bj1:bj2]))
    return "".join(out)


def _emit(prefix: str, lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        if line.endswith("\n"):
            out.append(prefix + line)
        else:
            out.append(prefix + line + "\n")
            out.append(NO_NEWLINE + "\n")
    return out


def parse_hunks(diff_text: str, patch_name: str) -> list[Hunk]:
    """Hunks of a single-file unified diff (text before '--- ' is ignored)."""
    lines = split_lines(diff_text)
    i = 0
    while i < len(lines) and not lines[i].startswith("--- "):
        i += 1
    if i + 1 >= len(lines) or not lines[i + 1].startswith("+++ "):
        raise PatchError(f"{patch_name}: no '--- a/...' / '+++ b/...' header found")
    i += 2
    hunks: list[Hunk] = []
    while i < len(lines):
        m = _HUNK_RE.match(lines[i])
        if not m:
            if lines[i].strip() == "":
                i += 1
                continue
            raise PatchError(f"{patch_name}: line {i + 1}: expected a hunk header, got {lines[i]!r}")
        hunk = Hunk(
            old_start=int(m.group(1)),
            old_len=int(m.group(2)) if m.group(2) is not None else 1,
            new_start=int(m.group(3)),
            new_len=int(m.group(4)) if m.group(4) is not None else 1,
        )
        i += 1
        old_seen = new_seen = 0
        while i < len(lines) and (old_seen < hunk.old_len or new_seen < hunk.new_len):
            line = lines[i]
            tag = line[:1]
            if tag not in (" ", "-", "+"):
                raise PatchError(
                    f"{patch_name}: hunk {len(hunks) + 1} ({hunk.header}) is truncated "
                    f"or malformed at line {i + 1}: {line!r}"
                )
            if i + 1 < len(lines) and lines[i + 1].rstrip("\n") == NO_NEWLINE:
                line = line[:-1] if line.endswith("\n") else line
                i += 1
            hunk.lines.append(line)
            old_seen += tag in " -"
            new_seen += tag in " +"
            i += 1
        if old_seen != hunk.old_len or new_seen != hunk.new_len:
            raise PatchError(
                f"{patch_name}: hunk {len(hunks) + 1} ({hunk.header}) has "
                f"{old_seen} old / {new_seen} new lines, header says "
                f"{hunk.old_len} / {hunk.new_len}"
            )
        hunks.append(hunk)
    if not hunks:
        raise PatchError(f"{patch_name}: the diff has no hunks")
    return hunks


def apply_diff(original: str, diff_text: str, patch_name: str) -> str:
    """Apply a single-file diff exactly; raise PatchError naming the first bad hunk."""
    src = split_lines(original)
    out: list[str] = []
    cursor = 0  # index into src of the next line not yet copied
    for number, hunk in enumerate(parse_hunks(diff_text, patch_name), start=1):
        start = hunk.old_start - 1 if hunk.old_len > 0 else hunk.old_start
        if start < cursor:
            raise PatchError(f"{patch_name}: hunk {number} ({hunk.header}) overlaps the previous hunk")
        want = hunk.old_lines()
        anchor = _anchor_problem(hunk, start, len(want), len(src))
        if anchor:
            raise PatchError(f"{patch_name}: hunk {number} ({hunk.header}) does not apply: {anchor}")
        have = src[start : start + len(want)]
        if have != want:
            raise PatchError(
                f"{patch_name}: hunk {number} ({hunk.header}) does not apply: "
                f"{_first_mismatch(want, have, start)}"
            )
        out.extend(src[cursor:start])
        out.extend(hunk.new_lines())
        cursor = start + len(want)
    out.extend(src[cursor:])
    return "".join(out)


def _anchor_problem(hunk: Hunk, start: int, old_len: int, src_len: int) -> str:
    """git's rule: a hunk with less leading than trailing context must sit at the start of
    the file, one with less trailing than leading context at its end."""
    tags = [line[0] for line in hunk.lines]
    changed = [i for i, t in enumerate(tags) if t != " "]
    if not changed:
        return ""
    leading, trailing = changed[0], len(tags) - 1 - changed[-1]
    if leading < trailing and start != 0:
        return "it has less leading context than trailing, so it must start the file"
    if trailing < leading and start + old_len != src_len:
        return "it has less trailing context than leading, so it must end the file"
    return ""


def _first_mismatch(want: list[str], have: list[str], start: int) -> str:
    for k, expected in enumerate(want):
        got = have[k] if k < len(have) else "<end of file>"
        if got != expected:
            return f"line {start + k + 1} is {got!r}, the diff expects {expected!r}"
    return "the file ends before the hunk does"


def applies(original: str, diff_text: str) -> bool:
    try:
        apply_diff(original, diff_text, "<probe>")
    except PatchError:
        return False
    return True


def count_changes(diff_text: str) -> tuple[int, int]:
    """(lines added, lines removed) of a diff."""
    added = removed = 0
    in_body = False
    for line in split_lines(diff_text):
        if line.startswith("@@"):
            in_body = True
        elif in_body and line.startswith("+"):
            added += 1
        elif in_body and line.startswith("-"):
            removed += 1
    return added, removed

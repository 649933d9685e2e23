"""Machinery behind tools/sync_upstream.py: standard library (and pip) only."""


class SyncError(Exception):
    """A failure the user must act on; the message names the thing and the fix."""


def progress(message: str, flush: bool = True) -> None:
    """Progress and notes go to stderr, so --json / --markdown output stays parseable."""
    import sys

    print(message, file=sys.stderr, flush=True)

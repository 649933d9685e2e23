"""Machinery behind tools/sync_upstream.py: standard library (and pip) only."""


class SyncError(Exception):
    """A failure the user must act on; the message names the thing and the fix."""

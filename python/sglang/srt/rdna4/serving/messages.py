"""Client-facing error text: server internals (source paths, line numbers, log timestamps
that native libraries such as xgrammar prepend) are cut out."""

from __future__ import annotations

import re

_PYTHON_FRAME = re.compile(r'\s*File "[^"]*", line \d+(?:, in [\w<>.]+)?')
_TIMESTAMP = re.compile(r"\[\d{2}:\d{2}:\d{2}\]\s*")
_SOURCE = re.compile(
    r"(?:[A-Za-z]:)?(?:[\\/][\w.\-+]+)+\.(?:py|pyx|so|c|cc|cpp|cu|h|hpp|rs)\b(?:[:,]\s*(?:line\s*)?\d+)*:?\s*"
)


def clean_message(text: str) -> str:
    text = _PYTHON_FRAME.sub("", text)
    text = _TIMESTAMP.sub("", text)
    text = _SOURCE.sub("", text)
    return text.strip()

"""End-to-end harness for tests: tiny local models, the real server, HF greedy reference."""

from sglang.srt.rdna4.devtools.local_server import (  # noqa: F401
    CPU_SERVER_ARGS,
    CPU_SERVER_ENV,
    Server,
    free_port,
    sse_events,
)
from sglang.srt.rdna4.devtools.tiny_models import (  # noqa: F401
    build_model,
    build_tokenizer,
    hf_greedy,
)

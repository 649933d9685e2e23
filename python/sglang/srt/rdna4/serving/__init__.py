"""Request robustness for the server: validation of request-shaped input before it reaches the
scheduler, and per-request fault isolation in the scheduler and detokenizer (issue #15).

Upstream files only dispatch into these modules; every limit is read once at start-up.
"""

"""Vision serving on RDNA4 and CPU: processors that need no torchvision, and the chat prompt of
multimodal requests (one BOS, as HF `apply_chat_template` gives)."""

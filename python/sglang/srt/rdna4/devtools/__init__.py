"""Developer tools: tiny local models, a local server launcher, the demo."""

"""The latent explorer: a small HTTP server (`server.py`) and its page (`static/`), driven by
`experiments/explore.py`; `browser.py` drives the page in headless Chromium (tests, screenshots)."""

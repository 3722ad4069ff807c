"""Driving the explorer's page in headless Chromium (Playwright with Debian's `chromium`): what the browser test
checks and what the README's screenshot shows, one code path.

Playwright's own browser download cannot work offline, so the browser is the system's: `apt-get install
chromium` (`.ci/run` installs it).
"""

from __future__ import annotations

import os
import shutil

import numpy as np

CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMIUM_ARGS = (  # headless and quiet: no sandbox (containers, root), no GPU, nothing fetched from the network
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
VIEWPORT = (1280, 800)  # the smallest window the page's layout keeps the decoded image in view at

IDLE = (  # the page has drawn more than n decodes and has none in flight or queued
    "() => window.explorer.info && window.explorer.decodes > {n} && !window.explorer.inFlight"
    " && !window.explorer.pending"
)
_SHOWN = """() => {
  const s = window.explorer, c = document.getElementById("decoded");
  const data = Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data);
  return {z: s.shown, label: s.shownLabel, width: c.width, height: c.height, rgba: data, decodes: s.decodes,
          errors: s.errors};
}"""


def find_chromium() -> str | None:
    """The path of a Chromium executable on this machine, or None."""
    for path in (os.environ.get("GEN_JAX_CHROMIUM"), *CHROMIUM_CANDIDATES, shutil.which("chromium")):
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def launch(playwright):
    """Headless Chromium (the system's, `find_chromium`) under Playwright, with `CHROMIUM_ARGS`."""
    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium found: apt-get install chromium (or set GEN_JAX_CHROMIUM)")
    return playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))


def wait_idle(page, locator=None, fill: str | None = None) -> None:
    """Clicks `locator` (or fills it with `fill`), if given, and waits until the page has drawn a decode since and
    has none in flight or queued."""
    count = page.evaluate("() => window.explorer.decodes")
    if locator is not None and fill is not None:
        locator.fill(fill)
    elif locator is not None:
        locator.click()
    page.wait_for_function(IDLE.format(n=count))


def shown(page, channels: int) -> dict:
    """The decoded image on screen as u8[H, W, channels] (1: grey, 3: RGB, 4: RGBA), with the code and label the
    page says it shows."""
    state = page.evaluate(_SHOWN)
    rgba = np.asarray(state.pop("rgba"), np.uint8).reshape(state["height"], state["width"], 4)
    state["image"] = rgba[..., :channels]
    return state


def canvas_pixels(page, selector: str, channels: int) -> np.ndarray:
    """The pixels of the canvas `selector` (a CSS selector; the first match) as u8[H, W, channels] (1: grey, 3:
    RGB, 4: RGBA)."""
    height, width, data = page.evaluate(
        """(selector) => { const c = document.querySelector(selector);
        return [c.height, c.width, Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data)]; }""",
        selector,
    )
    rgba = np.asarray(data, np.uint8).reshape(height, width, 4)
    return rgba[..., :channels]


def drive(url: str, screenshot: str | None = None, slider: int = 0, value: float = 1.5, timeout_s: float = 120.0):
    """Loads the explorer at `url` in a `VIEWPORT` window, clicks the first example, moves slider `slider` to
    `value` and optionally saves a screenshot of the window.

    Returns:
      {"info": the page's /api/info, "chosen": what the page shows after the click, "moved": after the slider}:
      each shown state is {"z": the code the page decoded, "label", "image": u8[H, W, C] read from the page's
      canvas, "decodes", "errors"}, and "chosen" adds "pair": the chosen image and its reconstruction as shown.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport=dict(zip(("width", "height"), VIEWPORT)))
            page.set_default_timeout(timeout_s * 1000)
            page.goto(url)
            page.wait_for_function(IDLE.format(n=0))
            info = page.evaluate("() => window.explorer.info")
            channels = info["image_shape"][2]

            wait_idle(page, page.locator("#examples canvas").first)
            page.wait_for_selector("#selected:not([hidden])")
            chosen = shown(page, channels)
            chosen["pair"] = [
                canvas_pixels(page, "#selected-image", channels) if info["has_encoder"] else None,
                canvas_pixels(page, "#selected-decoded", channels),
            ]

            wait_idle(page, page.locator("#sliders input").nth(slider), fill=str(value))
            moved = shown(page, channels)
            if screenshot:
                os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
                page.screenshot(path=screenshot)
            return {"info": info, "chosen": chosen, "moved": moved}
        finally:
            browser.close()

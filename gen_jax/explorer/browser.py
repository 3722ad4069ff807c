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

_IDLE = (  # the page has drawn more than n decodes and has none in flight or queued
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


def _shown(page, channels: int) -> dict:
    """The decoded image on screen as u8[H, W, channels], with the code and label the page says it shows."""
    shown = page.evaluate(_SHOWN)
    rgba = np.asarray(shown.pop("rgba"), np.uint8).reshape(shown["height"], shown["width"], 4)
    shown["image"] = rgba[..., :3] if channels == 3 else rgba[..., :1]
    return shown


def drive(url: str, screenshot: str | None = None, slider: int = 0, value: float = 1.5, timeout_s: float = 120.0):
    """Loads the explorer at `url`, clicks the first example, moves slider `slider` to `value` and optionally saves
    a screenshot of the whole page.

    Returns:
      {"info": the page's /api/info, "chosen": what the page shows after the click, "moved": after the slider}:
      each shown state is {"z": the code the page decoded, "label", "image": u8[H, W, C] read from the page's
      canvas, "decodes", "errors"}, and "chosen" adds "pair": the chosen image and its reconstruction as shown.
    """
    from playwright.sync_api import sync_playwright

    executable = find_chromium()
    if executable is None:
        raise FileNotFoundError("no Chromium found: apt-get install chromium (or set GEN_JAX_CHROMIUM)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 820})
            page.set_default_timeout(timeout_s * 1000)
            page.goto(url)
            page.wait_for_function(_IDLE.format(n=0))
            info = page.evaluate("() => window.explorer.info")
            channels = info["image_shape"][2]

            count = page.evaluate("() => window.explorer.decodes")
            page.locator("#examples canvas").first.click()
            page.wait_for_selector("#selected:not([hidden])")
            page.wait_for_function(_IDLE.format(n=count))
            chosen = _shown(page, channels)
            chosen["pair"] = [
                _canvas(page, "selected-image", channels) if info["has_encoder"] else None,
                _canvas(page, "selected-decoded", channels),
            ]

            count = page.evaluate("() => window.explorer.decodes")
            page.locator("#sliders input").nth(slider).fill(str(value))
            page.wait_for_function(_IDLE.format(n=count))
            moved = _shown(page, channels)
            if screenshot:
                os.makedirs(os.path.dirname(os.path.abspath(screenshot)), exist_ok=True)
                page.screenshot(path=screenshot, full_page=True)
            return {"info": info, "chosen": chosen, "moved": moved}
        finally:
            browser.close()


def _canvas(page, element_id: str, channels: int) -> np.ndarray:
    shape_and_data = page.evaluate(
        """(id) => { const c = document.getElementById(id);
        return [c.height, c.width, Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data)]; }""",
        element_id,
    )
    height, width, data = shape_and_data
    rgba = np.asarray(data, np.uint8).reshape(height, width, 4)
    return rgba[..., :3] if channels == 3 else rgba[..., :1]

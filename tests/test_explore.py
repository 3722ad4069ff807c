"""The latent explorer (experiments/explore.py, gen_jax/explorer/): its request checks, its server, every family
with a codec, and the page in headless Chromium."""

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from experiments import explore
from gen_jax.explorer import browser, server

from conftest import REPO_ROOT, codec_variants, snapshot, tiny_vae_config, train_run, variant_id


def _request(url: str, body: bytes | None = None, method: str | None = None) -> tuple[int, dict | bytes, str]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, payload, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, payload, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(payload) if kind == "application/json" else payload, kind


def _head(url: str, method: str = "HEAD") -> tuple[int, dict, bytes]:
    """(status, headers, body) of a bodiless request."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=60) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def _post(url: str, payload) -> tuple[int, dict]:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    status, answer, _ = _request(url, body, "POST")
    return status, answer


def _pixels(answer: dict) -> np.ndarray:
    return np.frombuffer(__import__("base64").b64decode(answer["pixels"]), np.uint8).reshape(answer["shape"])


# One variant per family is enough here: the explorer sees a family only through its codec.
FAMILIES = list({family: (family, architecture) for family, architecture in reversed(codec_variants())}.values())


@pytest.fixture(scope="module")
def served(tiny_trained_run):
    """(run, explorer, server, digests of the run directory before serving) of the tiny VAE trained a few steps,
    served on a free port."""
    run = tiny_trained_run("vae", "mlp", trained=True)
    before = snapshot(run.workdir)
    explorer = explore.build_explorer(run)
    httpd = server.serve_in_thread(explorer)
    yield run, explorer, httpd, before
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    "request_body, message",
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"z": [0, NaN]}', "finite numbers"),
        (b'{"z": [0, Infinity]}', "finite numbers"),
        (b'{"z": [0, 1e400]}', "not finite"),
        (b'{"z": [0, 1e300]}', "outside"),
        (b'{"z": [0, 100000000000000000000000000000000000000000000000000000000000]}', "outside"),
        (b'{"z": [0]}', "must have 2 entries"),
        (b'{"z": [0, 1, 2]}', "must have 2 entries"),
        (b'{"z": "0, 1"}', "list of 2 numbers"),
        (b'{"z": [0, "1"]}', r"z\[1\] must be a number"),
        (b'{"z": [0, true]}', r"z\[1\] must be a number"),
        (b'{"z": [0, 1], "label": 10}', r"label must be in \[0, 10\)"),
        (b'{"z": [0, 1], "label": 1.5}', "label must be an integer"),
        (b'{"z": [0, 1], "extra": 1}', "unknown field"),
    ],
)
def test_malformed_decode_requests_are_refused_with_a_message(request_body, message):
    with pytest.raises(server.BadRequest, match=message):
        server.parse_decode(server.parse_json(request_body), latent_dim=2, num_classes=10, conditional=False)


def test_a_conditional_model_needs_a_label_and_gets_the_one_sent():
    with pytest.raises(server.BadRequest, match="conditional"):
        server.parse_decode({"z": [0.0, 1.0]}, latent_dim=2, num_classes=10, conditional=True)
    z, label = server.parse_decode({"z": [0.5, -1], "label": 3}, latent_dim=2, num_classes=10, conditional=True)
    assert z.dtype == np.float32 and z.tolist() == [0.5, -1.0] and label == 3


def test_server_serves_the_page_and_the_api_only_and_survives_bad_requests(served):
    run, explorer, httpd, before = served
    assert httpd.server_address[0] == "127.0.0.1"
    status, page, kind = _request(httpd.url)
    assert status == 200 and kind.startswith("text/html") and b"explorer.js" in page
    for path in ("explorer.js", "explorer.css", "favicon.svg", "favicon.ico"):
        assert _request(httpd.url + path)[0] == 200
    for path in ("", "explorer.js", "favicon.ico", "api/info", "nothing"):  # HEAD answers as GET, without a body
        head, get = _head(httpd.url + path), _head(httpd.url + path, "GET")
        assert head[0] == get[0] == (404 if path == "nothing" else 200) and head[2] == b"" and get[2], path
        assert {k: head[1][k] for k in ("Content-Type", "Content-Length")} == {
            k: get[1][k] for k in ("Content-Type", "Content-Length")
        }, path
    for path in ("../config.json", "%2e%2e/config.json", "static/", "static/index.html", "config.json", "api/"):
        status, answer, _ = _request(httpd.url + path)
        assert status == 404 and "no such page" in answer["error"], path
    assert _request(httpd.url + "api/decode")[0] == 405
    assert _request(httpd.url + "api/decode", b"{}", "PUT")[0] == 405

    for body in (b"{", b'{"z": [1e999, 0]}', b'{"z": [0]}', b"x" * (server.MAX_BODY_BYTES + 1)):
        status, answer = _post(httpd.url + "api/decode", body)
        assert status == 400 and answer["error"], body[:20]
    assert _post(httpd.url + "api/point", {"index": explorer.num_points})[0] == 400

    z = [0.25, -0.5]
    status, answer = _post(httpd.url + "api/decode", {"z": z})
    assert status == 200
    expected = server.to_u8(run.decode(np.asarray([z], np.float32)))[0]
    np.testing.assert_array_equal(_pixels(answer), expected)
    assert snapshot(run.workdir) == before  # nothing written into the run


@pytest.mark.parametrize("variant", FAMILIES, ids=variant_id)
def test_every_family_with_a_codec_is_explorable(variant, tiny_trained_run):
    run = tiny_trained_run(*variant)
    explorer = explore.build_explorer(run)
    info = json.loads(json.dumps(explorer.info))  # what the page receives
    dim = run.latent_dim
    assert info["latent_dim"] == dim and len(info["start"]) == dim
    map_points = min(explore.MAP_POINTS, len(run.test_images)) if run.encode is not None else explore.MAP_POINTS
    assert len(info["map"]["points"]) == explorer.num_points == map_points
    assert np.asarray(info["map"]["axes"]).shape == (2, dim)
    assert all(len(s["direction"]) == dim for s in info["sliders"]) and info["sliders"]
    assert bool(info["attributes"]) == (run.encode is not None)

    # The map's plane holds each point: origin + u axes[0] + v axes[1] projects back onto (u, v).
    origin, axes, points = (np.asarray(info["map"][k]) for k in ("origin", "axes", "points"))
    np.testing.assert_allclose(((origin + points @ axes) - origin) @ axes.T, points, atol=1e-3)

    httpd = server.serve_in_thread(explorer)
    try:
        label = 3
        z = np.linspace(-1.0, 1.0, dim).astype(np.float32)
        status, answer = _post(httpd.url + "api/decode", {"z": z.tolist(), "label": label})
        assert status == 200
        expected = server.to_u8(run.decode(z[None], np.asarray([label], np.int32)))[0]
        np.testing.assert_array_equal(_pixels(answer), expected)
        assert list(_pixels(answer).shape) == info["image_shape"]

        status, point = _post(httpd.url + "api/point", {"index": 5})
        assert status == 200
        # Labels are classes only where the model has them: the GAN's noise vectors have none.
        assert info["has_classes"] == (run.encode is not None or run.conditional)
        assert point["label"] == (info["map"]["labels"][5] if info["has_classes"] else None)
        assert all(e["label"] is None for e in info["examples"]) == (not info["has_classes"])
        if run.encode is not None:
            images = explore.shown_images(run)
            np.testing.assert_array_equal(_pixels(point["image"]), server.to_u8(images[5]))
            np.testing.assert_array_equal(_pixels(info["examples"][5]), server.to_u8(images[5]))
            code = run.encode(images[5:6], np.asarray([point["label"]], np.int32))[0]
            np.testing.assert_allclose(point["code"], code, atol=1e-4)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_dynamically_binarised_runs_examples_are_grey(served):
    run, explorer, _, _ = served
    assert run.config.binarization == "dynamic"
    examples = np.stack([_pixels(e) for e in explorer.info["examples"]])
    np.testing.assert_array_equal(examples, server.to_u8(run.dataset.test_images[: len(examples)]))
    assert np.any((examples > 0) & (examples < 255))  # grey levels, not a binarisation


def _explore(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.explore", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def _one_line_error(result: subprocess.CompletedProcess, *says: str) -> None:
    assert result.returncode == 2 and result.stdout == "", result
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    for text in says:
        assert text in result.stderr, (text, result.stderr)


def test_bad_arguments_are_one_line_each_and_the_port_is_checked_before_the_run(tmp_path):
    missing_run = str(tmp_path / "no_run")  # the port and host are checked first: the run's absence is not reported
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        _one_line_error(_explore("--workdir", missing_run, "--port", str(port)), f"port {port}", "--port 0")
    _one_line_error(_explore("--workdir", missing_run, "--host", "no.such.host.invalid"), "no.such.host.invalid")
    _one_line_error(_explore("--workdir", missing_run, "--host", "192.0.2.1"), "--host 192.0.2.1")
    _one_line_error(_explore("--workdir", missing_run, "--port", "99999"), "--port", "99999")
    _one_line_error(_explore("--workdir", missing_run, "--port", "0"), "config.json does not exist")
    os.makedirs(tmp_path / "damaged")
    (tmp_path / "damaged" / "config.json").write_text('{"family": "vae", "model": {')
    _one_line_error(_explore("--workdir", str(tmp_path / "damaged"), "--port", "0"), "config.json is not valid JSON")


# --- the page, in headless Chromium --------------------------------------------------------------------------------


def _browser_or_skip():
    """Skips without Chromium or Playwright, except in CI (GEN_JAX_REQUIRE_DATA), where their absence fails."""
    missing = None
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing = "Playwright is not installed (pip install -e '.[dev]')"
    if browser.find_chromium() is None:
        missing = "Chromium is not installed (apt-get install chromium)"
    if missing and os.environ.get("GEN_JAX_REQUIRE_DATA"):
        pytest.fail(f"{missing}; CI needs it for the browser test")
    if missing:
        pytest.skip(missing)


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium for the module's page tests."""
    _browser_or_skip()
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    launched = browser.launch(playwright)
    yield launched
    launched.close()
    playwright.stop()


@contextlib.contextmanager
def _page(chromium, url: str, viewport=browser.VIEWPORT):
    """A page at `url` in a window of `viewport` pixels, loaded and idle; its `problems` lists every uncaught error
    and every response of status 400 or more (a missing favicon included) while it is open."""
    page = chromium.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    page.set_default_timeout(120_000)
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"uncaught: {error}"))
    page.on("response", lambda r: r.status >= 400 and page.problems.append(f"{r.status} {r.url}"))
    try:
        page.goto(url)
        page.wait_for_function(browser.IDLE.format(n=0))
        page.wait_for_timeout(300)  # the favicon is fetched after the page
        yield page
    finally:
        page.close()


@contextlib.contextmanager
def _serving(run):
    httpd = server.serve_in_thread(explore.build_explorer(run))
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_page_in_headless_chromium_shows_the_servers_decoding(served, tmp_path):
    _browser_or_skip()
    run, explorer, httpd, before = served
    screenshot = tmp_path / "explorer.png"
    seen = browser.drive(httpd.url, str(screenshot), slider=0, value=1.5)
    chosen, moved = seen["chosen"], seen["moved"]
    assert chosen["errors"] == 0 and moved["errors"] == 0

    # Clicking the first example shows test image 0 (grey) beside its reconstruction, and makes its code current.
    image, reconstruction = chosen["pair"]
    grey = explore.shown_images(run)
    np.testing.assert_array_equal(image, server.to_u8(grey[0]))
    code = np.asarray(run.encode(grey[:1]))[0]
    np.testing.assert_allclose(chosen["z"], code, atol=1e-4)
    np.testing.assert_array_equal(reconstruction, server.to_u8(run.decode(code[None]))[0])

    # The slider moved the code by 1.5 standard deviations along z[0], and the image on screen changed to the
    # server's decoding of exactly the code the page shows.
    scale = explorer.info["sliders"][0]["scale"]
    np.testing.assert_allclose(np.asarray(moved["z"]) - chosen["z"], [1.5 * scale, 0.0], rtol=1e-4, atol=1e-5)
    assert not np.array_equal(moved["image"], chosen["image"])
    np.testing.assert_array_equal(moved["image"], explorer.decode(np.asarray(moved["z"], np.float32), None))
    assert screenshot.stat().st_size > 10_000
    assert snapshot(run.workdir) == before


@pytest.fixture(scope="module")
def long_page_run(digits, tmp_path_factory):
    """A tiny VAE with a 16-d code: `MAX_SLIDERS` sliders and ten attributes, a page taller than 800 pixels."""
    from gen_jax import trained

    workdir = tmp_path_factory.mktemp("vae_16d")
    train_run(tiny_vae_config(model__latent_dim=16, num_steps=30, eval_every=30, checkpoint_every=30), digits, workdir)
    return trained.load_run(str(workdir), digits)


def _box(page, locator) -> dict:
    return locator.evaluate("(e) => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom}; }")


# The page of this run fits in 1280 x 800; the short window stands in for a taller page (CelebA's 40 attribute
# sliders), which scrolls while the decoded image must stay in view.
@pytest.mark.parametrize("viewport", [(1280, 800), (1920, 1080), (1280, 560)], ids=lambda v: f"{v[0]}x{v[1]}")
def test_the_decoded_image_stays_in_view_while_every_control_is_used(chromium, long_page_run, viewport):
    with _serving(long_page_run) as httpd, _page(chromium, httpd.url, viewport) as page:
        controls = page.locator(
            "#map, #examples canvas, #label, #random, #reset, #sliders input, #set-a, #set-b, #morph,"
            " input[name=path], #attributes input"
        )
        assert controls.count() > 30
        if viewport[1] < 800:
            assert page.evaluate("() => document.documentElement.scrollHeight") > viewport[1] + 100
        view, panel = (page.locator(f"#{p}-panel").bounding_box() for p in ("view", "controls"))
        assert panel["x"] >= view["x"] + view["width"]  # the controls beside the image, not wrapped below it
        for k in range(controls.count()):
            control = controls.nth(k)
            if not control.is_visible():
                continue  # the class menu of an unconditional model
            control.scroll_into_view_if_needed()
            decoded, where = _box(page, page.locator("#decoded")), _box(page, control)
            assert where["top"] >= 0 and where["bottom"] <= viewport[1], k
            assert decoded["top"] >= 0 and decoded["bottom"] <= viewport[1], (k, decoded)
        # The last attribute slider, used at the bottom of the page: the image shown is still in view and changes.
        last = page.locator("#attributes input").last
        before = browser.shown(page, 1)["image"]
        browser.wait_idle(page, last, fill="2")
        decoded = _box(page, page.locator("#decoded"))
        assert decoded["top"] >= 0 and decoded["bottom"] <= viewport[1]
        assert not np.array_equal(browser.shown(page, 1)["image"], before)

        # The code under the image: one span per number, the text wrapped onto several lines between numbers only.
        rects = page.evaluate(
            "() => Array.from(document.querySelectorAll('#view-z span'), (s) => Array.from(s.getClientRects(),"
            " (r) => r.top))"
        )
        assert len(rects) == long_page_run.latent_dim and all(len(r) == 1 for r in rects)
        assert len({round(r[0]) for r in rects}) > 1
        assert page.problems == []


def test_the_page_names_what_it_shows(chromium, served):
    run, explorer, httpd, _ = served
    labels = explorer.info["map"]["labels"]
    with _page(chromium, httpd.url) as page:
        assert page.locator("#examples canvas").first.get_attribute("title") == f"test image #0 · class {labels[0]}"
        browser.wait_idle(page, page.locator("#examples canvas").nth(3))
        assert page.locator("#selected-caption").text_content() == f"Chosen: test image #3 · class {labels[3]}"
        assert page.locator("#view-caption").text_content() == f"test image #3 · class {labels[3]}"
        names = page.locator("#attributes .slider span:first-child").all_text_contents()
        assert names == [f"toward class {k}" for k in range(10)]
        assert page.locator("#legend span").count() == 10
        # The examples on the page are the grey test images, pixel for pixel.
        grey = server.to_u8(explore.shown_images(run))
        for k in (0, 5):
            np.testing.assert_array_equal(
                browser.canvas_pixels(page, f"#examples canvas[data-index='{k}']", 1), grey[k]
            )
        assert page.problems == []


def _map_colours(page) -> set[str]:
    """The colours the map's points are drawn in: the page's palette entry nearest each opaque enough pixel."""
    palette = page.evaluate("() => [...COLOURS, NO_CLASS_COLOUR, '#000000']")
    rgb = np.asarray([[int(c[i : i + 2], 16) for i in (1, 3, 5)] for c in palette], np.float32)
    pixels = browser.canvas_pixels(page, "#map", 4).reshape(-1, 4)
    drawn = pixels[pixels[:, 3] >= 128, :3].astype(np.float32)
    nearest = np.argmin(((drawn[:, None, :] - rgb[None]) ** 2).sum(-1), axis=1)
    return {palette[i] for i in np.unique(nearest)}


def test_a_model_without_classes_shows_none(chromium, tiny_trained_run, served):
    gan = tiny_trained_run("gan", "mlp", trained=True)
    with _serving(gan) as httpd, _page(chromium, httpd.url) as page:
        assert page.locator("#legend span").count() == 0
        assert page.locator("#examples canvas").first.get_attribute("title") == "noise vector #0"
        browser.wait_idle(page, page.locator("#examples canvas").nth(2))
        assert page.locator("#selected-caption").text_content() == "Chosen: noise vector #2"
        assert "class" not in page.locator("#view-caption").text_content()
        assert _map_colours(page) == {"#546e7a", "#000000"}  # the points' one colour, the current code's ring
        assert page.problems == []
    with _page(chromium, served[2].url) as page:  # a model with classes: one colour per class
        assert len(_map_colours(page)) > 5


def _wait_text(page, selector: str, text: str) -> None:
    page.wait_for_function(
        "([s, t]) => document.querySelector(s).textContent.includes(t)", arg=[selector, text], timeout=60_000
    )


def test_the_cvae_morph_ends_are_a_and_b_under_their_own_classes_and_new_codes_reset_the_controls(
    chromium, tiny_trained_run
):
    run = tiny_trained_run("cvae", None, trained=True)
    with _serving(run) as httpd, _page(chromium, httpd.url) as page:
        examples = page.evaluate("() => window.explorer.info.examples")
        first = examples[0]
        second = next(e for e in examples if e["label"] != first["label"])
        ends = {}
        for end, example in (("a", first), ("b", second)):
            browser.wait_idle(page, page.locator(f"#examples canvas[data-index='{example['index']}']"))
            ends[end] = browser.shown(page, 1)
            page.locator(f"#set-{end}").click()
            _wait_text(page, f"#morph-{end}-caption", f"{end.upper()} · class {example['label']}")
        _wait_text(page, "#morph-t", "off the path")

        for t, end in (("0", "a"), ("1", "b")):
            browser.wait_idle(page, page.locator("#morph"), fill=t)
            at = browser.shown(page, 1)
            assert at["label"] == ends[end]["label"] and at["z"] == ends[end]["z"], (t, at["label"])
            np.testing.assert_array_equal(at["image"], ends[end]["image"])
            np.testing.assert_array_equal(at["image"], browser.canvas_pixels(page, f"#morph-{end}", 1))
            assert page.locator("#morph-t").text_content() == f"t = {float(t):.2f}"
        browser.wait_idle(page, page.locator("#morph"), fill="0.3")
        assert browser.shown(page, 1)["label"] == first["label"]
        assert page.locator("#view-caption").text_content().startswith("morph A→B at t = 0.30")

        # A new code, by "random" or by an example: sliders to 0, t back to 0.5 and off the path; the class stays.
        for new_code in ("#random", "#examples canvas >> nth=4"):
            browser.wait_idle(page, page.locator("#sliders input").first, fill="1")
            browser.wait_idle(page, page.locator("#morph"), fill="0.8")
            label = page.evaluate("() => window.explorer.label")
            browser.wait_idle(page, page.locator(new_code))
            state = page.evaluate("() => ({t: window.explorer.morph.t, sliders: window.explorer.sliders})")
            assert state["t"] is None and not any(state["sliders"]), new_code
            assert (
                page.locator("#morph").input_value() == "0.5"
                and "off the path" in page.locator("#morph-t").text_content()
            )
            if new_code == "#random":
                assert page.evaluate("() => window.explorer.label") == label
        assert page.problems == []


def test_a_stopped_server_is_reported_on_the_page(chromium, tiny_run_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "experiments.explore", "--workdir", tiny_run_dir("vae", "mlp", True), "--port", "0"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stdout.readline()
        url = re.search(r"at (http://\S+)", line)
        assert url, (line, process.stderr.read() if process.poll() is not None else "")
        with _page(chromium, url.group(1)) as page:
            process.kill()
            process.wait(timeout=60)
            for control in ("#random", "#set-a", "#examples canvas >> nth=1"):
                page.evaluate("() => { document.getElementById('status').textContent = ''; }")
                page.locator(control).click()
                _wait_text(page, "#status", "server stopped")
            assert not [p for p in page.problems if p.startswith("uncaught")], page.problems
    finally:
        process.kill()
        process.wait(timeout=60)

"""The latent explorer (experiments/explore.py, gen_jax/explorer/): its request checks, its server, every family
with a codec, and the page in headless Chromium."""

import json
import os
import urllib.error
import urllib.request

import numpy as np
import pytest

from experiments import explore
from gen_jax.explorer import browser, server

from conftest import codec_variants, snapshot, variant_id


def _request(url: str, body: bytes | None = None, method: str | None = None) -> tuple[int, dict | bytes, str]:
    request = urllib.request.Request(url, data=body, method=method)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            status, payload, kind = response.status, response.read(), response.headers["Content-Type"]
    except urllib.error.HTTPError as error:
        status, payload, kind = error.code, error.read(), error.headers["Content-Type"]
    return status, json.loads(payload) if kind == "application/json" else payload, kind


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
    for path in ("explorer.js", "explorer.css"):
        assert _request(httpd.url + path)[0] == 200
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
        assert status == 200 and point["label"] == int(explorer.info["map"]["labels"][5])
        if run.encode is not None:
            np.testing.assert_array_equal(_pixels(point["image"]), server.to_u8(run.test_images[5]))
            code = run.encode(run.test_images[5:6], np.asarray([point["label"]], np.int32))[0]
            np.testing.assert_allclose(point["code"], code, atol=1e-4)
    finally:
        httpd.shutdown()
        httpd.server_close()


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


def test_page_in_headless_chromium_shows_the_servers_decoding(served, tmp_path):
    _browser_or_skip()
    run, explorer, httpd, before = served
    screenshot = tmp_path / "explorer.png"
    seen = browser.drive(httpd.url, str(screenshot), slider=0, value=1.5)
    chosen, moved = seen["chosen"], seen["moved"]
    assert chosen["errors"] == 0 and moved["errors"] == 0

    # Clicking the first example shows test image 0 beside its reconstruction, and makes its code current.
    image, reconstruction = chosen["pair"]
    np.testing.assert_array_equal(image, server.to_u8(run.test_images[0]))
    code = np.asarray(run.encode(run.test_images[:1]))[0]
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

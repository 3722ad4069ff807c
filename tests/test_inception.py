"""The FID Inception port (gen_jax/inception.py), its weights converter (experiments/fid_weights.py) and the FID and
KID functions (gen_jax/fid.py).

The parity tests build pytorch-fid's own `InceptionV3([3])` offline (its weight loader replaced, so no download),
with drawn weights whose activations stay of order one, convert the same state dict with experiments.fid_weights,
and compare the two networks on the same images.  They need torch, torchvision and pytorch-fid (the `fid` extra,
which `make test` installs) and are skipped, saying so, only where torch is absent.
"""

import json
import os
import socket

import numpy as np
import pytest

from experiments import fid_weights
from gen_jax import fid, inception, metrics


def _import_torch():
    import benchmarks.peers  # noqa: F401  (before torch: it sets OpenMP's passive wait policy, for a shared machine)

    return pytest.importorskip("torch", reason="torch is not installed: pip install -e '.[fid]' for the parity tests")


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _images(key: int, count: int, height: int, width: int, channels: int) -> np.ndarray:
    """Smooth random images f32[count, height, width, channels] in [0, 1]: blobs of 4×4 noise plus fine noise."""
    rng = np.random.default_rng(key)
    coarse = rng.uniform(0, 1, (count, 4, 4, channels))
    rows = inception.bilinear_matrix(4, height)
    columns = inception.bilinear_matrix(4, width)
    smooth = np.einsum("oh,bhwc,pw->bopc", rows, coarse, columns)
    return np.clip(0.8 * smooth + 0.2 * rng.uniform(0, 1, (count, height, width, channels)), 0, 1).astype(np.float32)


# --- Input handling ---------------------------------------------------------------------------------------------


def test_bilinear_matrix_is_interpolation_with_clamped_edges():
    identity = inception.bilinear_matrix(299, 299)
    np.testing.assert_array_equal(identity, np.eye(299, dtype=np.float32))
    for in_size, out_size in ((28, 299), (512, 299), (5, 3)):
        matrix = inception.bilinear_matrix(in_size, out_size)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)
        assert np.all(matrix >= 0) and np.all(np.count_nonzero(matrix, axis=1) <= 2)
    # Upsampling: the first output pixels lie left of input pixel 0's centre and copy it (the clamp).
    np.testing.assert_array_equal(inception.bilinear_matrix(28, 299)[0], np.eye(28)[0])


def test_grey_images_are_repeated_to_three_channels():
    grey = _images(0, 2, 20, 24, 1)
    np.testing.assert_array_equal(
        inception.preprocess(grey, size=33), inception.preprocess(np.repeat(grey, 3, axis=-1), size=33)
    )
    scaled = inception.preprocess(np.zeros((1, 5, 5, 3)), size=7)
    assert scaled.shape == (1, 7, 7, 3) and np.all(scaled == -1.0)
    with pytest.raises(ValueError, match="C = 1 or 3"):
        inception.preprocess(np.zeros((1, 5, 5, 2)))


def test_preprocess_matches_pytorch_fid_resize_and_scaling():
    """pytorch-fid's `F.interpolate(x, (299, 299), mode='bilinear', align_corners=False)` then 2x − 1, up and down."""
    torch = _import_torch()
    for height, width in ((28, 28), (32, 17), (299, 299), (340, 512)):
        images = _images(height + width, 2, height, width, 3)
        expected = torch.nn.functional.interpolate(
            torch.from_numpy(images.transpose(0, 3, 1, 2)), size=(299, 299), mode="bilinear", align_corners=False
        )
        expected = (2 * expected - 1).numpy().transpose(0, 2, 3, 1)
        np.testing.assert_allclose(inception.preprocess(images), expected, atol=1e-6, err_msg=f"{height}×{width}")


# --- Weights ----------------------------------------------------------------------------------------------------


def test_without_weights_one_line_says_how_to_provide_them(tmp_path, no_network):
    not_npz = tmp_path / "weights.npz"
    not_npz.write_text("not an npz")
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, **{"params/Conv2d_1a_3x3/conv/kernel": np.zeros((3, 3, 3, 7))})
    for path in ("", None, str(tmp_path / "absent.npz"), str(not_npz), str(wrong)):
        with pytest.raises(inception.InceptionWeightsError) as error:
            inception.load_variables(path)
        message = str(error.value)
        assert "\n" not in message
        assert "python -m experiments.fid_weights --from" in message and "inception_weights" in message
    assert "is not the FID Inception-v3: it lacks batch_stats/Conv2d_1a_3x3/bn/mean (470 tensors differ)" in message


def test_converter_bad_paths_are_one_line(tmp_path, capsys, no_network):
    assert fid_weights.main(["--from", str(tmp_path / "absent.pth"), "--out", str(tmp_path / "out.npz")]) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and message.startswith("error: ")
    assert not os.path.exists(tmp_path / "out.npz")
    assert fid_weights.main(["--from", "x.pth", "--out", str(tmp_path / "no_dir" / "out.npz")]) == 2
    assert "existing directory" in capsys.readouterr().err


def test_converter_rejects_a_state_dict_of_another_network(tmp_path, capsys):
    torch = _import_torch()
    path = tmp_path / "other.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": torch.zeros(32, 3, 3, 3), "layer1.0.weight": torch.zeros(2)}, path)
    assert fid_weights.main(["--from", str(path), "--out", str(tmp_path / "out.npz")]) == 2
    message = capsys.readouterr().err
    assert message.count("\n") == 1 and "layer1.0.weight" in message
    path.write_text("not a pth")
    assert fid_weights.main(["--from", str(path), "--out", str(tmp_path / "out.npz")]) == 2
    assert "not a PyTorch state dict" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "out.npz")


# --- Parity with pytorch-fid ------------------------------------------------------------------------------------


def _drawn_state_dict(torch, inception_module, calibration) -> dict:
    """A state dict of pytorch-fid's FID Inception whose activations are of order one on inputs like `calibration`
    (f32[N, 3, 299, 299] in [-1, 1]).

    Conv weights are drawn with fan-in scaling (He), batch-norm scales and shifts at random, and the running
    statistics set to the batch statistics of `calibration` (one training-mode pass with cumulative averaging), so every
    batch norm outputs about zero mean and unit variance before its ReLU.  The published file's classifier (fc) is
    drawn too, so the converter must drop it.
    """
    generator = torch.Generator().manual_seed(0)
    shapes = inception_module._inception_v3(num_classes=1008, aux_logits=False, weights=None).state_dict()
    state = {}
    for name, tensor in shapes.items():
        if name.endswith("conv.weight") or name == "fc.weight":
            fan_in = tensor[0].numel()
            state[name] = torch.randn(tensor.shape, generator=generator) * (2.0 / fan_in) ** 0.5
        elif name.endswith("bn.weight"):
            state[name] = 0.5 + torch.rand(tensor.shape, generator=generator)
        elif name.endswith("bn.bias") or name == "fc.bias":
            state[name] = 0.2 * torch.randn(tensor.shape, generator=generator)
        else:
            state[name] = tensor.clone()  # running statistics (0 and 1) and step counters: calibrated below
    with _loader_returning(inception_module, state):
        network = inception_module.fid_inception_v3()
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.momentum = None  # a cumulative average: after one pass, the running statistics are that batch's
            module.reset_running_stats()
    network.train()
    with torch.no_grad():
        network(calibration)
    return {name: tensor.clone() for name, tensor in network.state_dict().items()}


class _loader_returning:
    """Replaces pytorch-fid's `load_state_dict_from_url` with one that returns `state` and records the URL asked."""

    def __init__(self, inception_module, state):
        self.module, self.state, self.urls = inception_module, state, []

    def __enter__(self):
        self.patch = pytest.MonkeyPatch()
        self.patch.setattr(self.module, "load_state_dict_from_url", lambda url, **kwargs: self._load(url))
        return self

    def _load(self, url):
        self.urls.append(url)
        return self.state

    def __exit__(self, *exc):
        self.patch.undo()


def _torch_input(torch, images: np.ndarray, resize_and_scale: bool = False):
    """images f32[N, H, W, C] -> NCHW, grey repeated to 3 channels; optionally resized to 299 and scaled to [-1, 1]."""
    x = torch.from_numpy(np.repeat(images, 3 // images.shape[-1], axis=-1).transpose(0, 3, 1, 2).copy())
    if resize_and_scale:
        x = 2 * torch.nn.functional.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False) - 1
    return x


@pytest.fixture(scope="module")
def parity(tmp_path_factory):
    """pytorch-fid's and the port's pool3 features of two image sets (colour 32×32 and grey 28×28), same weights."""
    torch = _import_torch()
    from pytorch_fid import inception as inception_module

    torch.manual_seed(0)
    colour = _images(1, 12, 32, 32, 3)
    grey = _images(2, 12, 28, 28, 1) ** 2  # another distribution: darker, grey
    calibration = torch.cat(
        [
            _torch_input(torch, x, resize_and_scale=True)
            for x in (_images(3, 3, 32, 32, 3), _images(4, 3, 28, 28, 1) ** 2)
        ]
    )
    state = _drawn_state_dict(torch, inception_module, calibration)

    with _loader_returning(inception_module, state) as loader:
        reference = inception_module.InceptionV3([3]).eval()  # use_fid_inception=True, resize and scaling on
    with torch.no_grad():
        torch_features = [reference(_torch_input(torch, x))[0].flatten(1).numpy() for x in (colour, grey)]

    directory = tmp_path_factory.mktemp("fid_weights")
    torch.save(state, directory / "weights.pth")
    assert fid_weights.main(["--from", str(directory / "weights.pth"), "--out", str(directory / "weights.npz")]) == 0
    variables = inception.load_variables(str(directory / "weights.npz"))
    port_features = [inception.pool3_features(variables, x, batch_size=6) for x in (colour, grey)]
    return {"urls": loader.urls, "torch": torch_features, "port": port_features}


@pytest.mark.slow
def test_pytorch_fid_network_was_built_offline_with_the_handed_weights(parity):
    from pytorch_fid import inception as inception_module

    assert parity["urls"] == [inception_module.FID_WEIGHTS_URL]


@pytest.mark.slow
def test_drawn_weights_give_features_of_order_one(parity):
    """torchvision's default initialisation gives vanishingly small features, on which any port would pass; these are
    of order one and differ between images (what FID measures)."""
    for features in parity["torch"]:
        assert features.shape[1] == inception.FEATURE_DIM
        assert 0.1 < np.mean(features) < 10
        assert np.median(np.std(features, axis=0)) > 0.1 * np.mean(features)


@pytest.mark.slow
def test_pool3_features_equal_pytorch_fids(parity):
    """Within float32 round-off; a pool that counted its padding, or an average pool in Mixed_7c, would be far off."""
    for torch_features, port_features in zip(parity["torch"], parity["port"]):
        assert port_features.shape == torch_features.shape
        relative = np.max(np.abs(port_features - torch_features)) / np.max(np.abs(torch_features))
        assert relative < 1e-4


def _statistics(features_a: np.ndarray, features_b: np.ndarray) -> tuple:
    """(mean_a, cov_a, mean_b, cov_b): the arguments of a Fréchet distance."""
    return (*metrics.feature_statistics(features_a), *metrics.feature_statistics(features_b))


def _in_their_span(features_a: np.ndarray, features_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both sets in an orthonormal basis of the span of their centred rows and the difference of their means.

    Both covariances and the mean difference lie in that span (23 dimensions for 12 + 12 rows), so every term of
    the Fréchet distance, Tr (Σa Σb)^½ included, is the same there as in all 2048: the same number for a 23×23
    matrix square root in place of a 2048×2048 one (`test_frechet_distance_is_the_same_in_the_span`).
    """
    mean_a, mean_b = features_a.mean(0), features_b.mean(0)
    spanning = np.concatenate([features_a - mean_a, features_b - mean_b, (mean_a - mean_b)[None]]).astype(np.float64)
    basis, _ = np.linalg.qr(spanning.T)
    return features_a @ basis, features_b @ basis


def test_frechet_distance_is_the_same_in_the_span():
    _import_torch()
    from pytorch_fid.fid_score import calculate_frechet_distance

    a, b = _correlated_features(0, 12, 256), _correlated_features(1, 12, 256, 0.2) ** 2
    full = calculate_frechet_distance(*_statistics(a, b))
    in_span = calculate_frechet_distance(*_statistics(*_in_their_span(a, b)))
    assert in_span == pytest.approx(full, rel=1e-6)


@pytest.mark.slow
def test_fid_equals_pytorch_fids_on_two_image_sets(parity):
    """The port's features with `fid.frechet_distance` against pytorch-fid's features with its own
    `calculate_frechet_distance`, each in the span of its own features (`_in_their_span`: the same distance).
    12 images a set: the covariances have rank 11 of 2048, so this checks the pipeline end to end, not the quality
    of the estimate."""
    from pytorch_fid.fid_score import calculate_frechet_distance

    expected = calculate_frechet_distance(*_statistics(*_in_their_span(*parity["torch"])))
    measured = fid.frechet_distance(*_statistics(*_in_their_span(*parity["port"])))
    assert expected > 0.1 * np.mean(parity["torch"][0]) ** 2
    assert measured == pytest.approx(expected, rel=1e-3)


# --- Fréchet distance and KID -----------------------------------------------------------------------------------


def _correlated_features(seed: int, count: int, dim: int, shift: float = 0.0) -> np.ndarray:
    """f64[count, dim]: draws `seed` of one correlated Gaussian per (dim, shift)."""
    mixing = np.random.default_rng(dim).normal(size=(dim, dim)) / np.sqrt(dim)
    return np.random.default_rng(seed).normal(size=(count, dim)) @ mixing + shift


def test_frechet_distance_equals_pytorch_fids_function():
    """Same statistics, same number: full-rank (200 samples of 32-d) and singular (10 samples of 64-d) covariances;
    and on full-rank statistics the same value as the eigendecomposition of `metrics`."""
    _import_torch()
    from pytorch_fid.fid_score import calculate_frechet_distance

    for count, dim in ((200, 32), (10, 64)):
        a = metrics.feature_statistics(_correlated_features(0, count, dim))
        b = metrics.feature_statistics(_correlated_features(1, count, dim, shift=0.3))
        expected = calculate_frechet_distance(*a, *b)
        assert fid.frechet_distance(*a, *b) == pytest.approx(expected, rel=1e-12)
        if count > dim:
            assert metrics.frechet_distance_from_statistics(*a, *b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_retries_a_singular_product_with_eps_as_pytorch_fid_does(monkeypatch):
    _import_torch()
    from pytorch_fid.fid_score import calculate_frechet_distance

    square_root = fid.scipy.linalg.sqrtm
    calls = []

    def not_finite_first(matrix, *args, **kwargs):
        calls.append(matrix)
        if len(calls) % 2 == 1:
            return (np.full_like(matrix, np.nan), 0.0) if args or kwargs else np.full_like(matrix, np.nan)
        return square_root(matrix, *args, **kwargs)

    monkeypatch.setattr(fid.scipy.linalg, "sqrtm", not_finite_first)
    a = metrics.feature_statistics(_correlated_features(0, 50, 8))
    b = metrics.feature_statistics(_correlated_features(1, 50, 8, shift=0.5))
    measured = fid.frechet_distance(*a, *b, eps=0.1)
    expected = calculate_frechet_distance(*a, *b, eps=0.1)
    assert len(calls) == 4
    np.testing.assert_allclose(calls[1], (a[1] + 0.1 * np.eye(8)) @ (b[1] + 0.1 * np.eye(8)))
    assert measured == pytest.approx(expected, rel=1e-12)
    assert measured != pytest.approx(metrics.frechet_distance_from_statistics(*a, *b), rel=1e-3)  # eps was used


def test_frechet_distance_refuses_an_imaginary_square_root():
    mean = np.zeros(2)
    with pytest.raises(ValueError, match="imaginary part of 1: .* use more samples"):
        fid.frechet_distance(mean, np.diag([1.0, -1.0]), mean, np.eye(2))
    with pytest.raises(ValueError, match="different sizes"):
        fid.frechet_distance(np.zeros(3), np.eye(3), mean, np.eye(2))


def test_mmd2_unbiased_is_the_u_statistic_of_the_polynomial_kernel():
    a, b = _correlated_features(0, 6, 5), _correlated_features(1, 6, 5, shift=0.4)
    kernel = lambda x, y: (x @ y / 5 + 1) ** 3
    m = len(a)
    pairs = [(i, j) for i in range(m) for j in range(m) if i != j]
    expected = (
        sum(kernel(a[i], a[j]) + kernel(b[i], b[j]) for i, j in pairs) / (m * (m - 1))
        - 2 * sum(kernel(a[i], b[j]) for i in range(m) for j in range(m)) / m**2
    )
    assert fid.mmd2_unbiased(a, b) == pytest.approx(expected, rel=1e-12)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    a, same, shifted = (_correlated_features(seed, 300, 16, shift) for seed, shift in ((0, 0), (1, 0), (2, 0.5)))
    kid_same = fid.kernel_inception_distance(a, same, subsets=50, subset_size=200)
    kid_shifted = fid.kernel_inception_distance(a, shifted, subsets=50, subset_size=200)
    assert kid_shifted == fid.kernel_inception_distance(
        a, shifted, subsets=50, subset_size=200
    )  # subsets from the fixed seed
    assert abs(kid_same[0]) < 3 * kid_same[1] < kid_shifted[0]
    assert fid.kernel_inception_distance(a, shifted, subsets=10, subset_size=50)[1] > kid_shifted[1]
    with pytest.raises(ValueError, match="subsets of 1000 need"):
        fid.kernel_inception_distance(a, shifted)


def test_inception_scores_name_fid_and_kid_and_cap_the_subset_size():
    features, reference = _correlated_features(0, 40, 8, 0.2), _correlated_features(1, 60, 8)
    scores = fid.inception_scores(features, reference)
    assert set(scores) == {"inception_fid", "inception_kid", "inception_kid_std"}
    assert scores["inception_fid"] == pytest.approx(
        fid.frechet_distance(*metrics.feature_statistics(features), *metrics.feature_statistics(reference))
    )
    assert scores["inception_kid"] == fid.kernel_inception_distance(features, reference, subset_size=40)[0]


@pytest.mark.slow
def test_cost_benchmark_labels_an_extrapolated_record(tmp_path):
    from benchmarks import inception_cost

    path = tmp_path / "cost.json"
    assert inception_cost.main(["inception_cost", "--images", "3", "--batch-size", "2", "--json", str(path)]) == 0
    record = json.loads(path.read_text())
    assert record["extrapolated_from"] == 3 and record["images"] == 3 and record["compile_s"] > 0
    assert record["seconds_per_10000"] == pytest.approx(record["features_s"] * 10_000 / 3)
    assert set(record["machine"]["load_average_1_5_15_min"]) == {"before", "after"}

"""Specifications for preparing data (gen_jax/data/prepare.py, experiments/prepare.py) and reading it back
(gen_jax/data/prepared.py): pixels as the source's after the stated crop and resize, the sidecar, bad input in one
line with nothing written, TFDS through tfds.testing.mock_data, and batches read on the host equal to the device's."""

import hashlib
import json
import os
import pathlib
import shutil
import subprocess
import sys
import zlib

import jax
import numpy as np
import PIL.Image
import pytest

from gen_jax import data
from gen_jax.data import prepare, prepared
from gen_jax.data.dataset import DatasetUnavailableError
from gen_jax.data.prepared import PreparedSource

from conftest import REPO_ROOT

SIZE = 4
rng = np.random.default_rng(0)
RGB = rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
BIG = rng.integers(0, 256, (10, 6, 3), dtype=np.uint8)  # taller than wide: cropped to its middle 6 rows
GREY = rng.integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
INDEXED = rng.integers(0, 3, (SIZE, SIZE), dtype=np.uint8)  # palette entry 0 is transparent
PALETTE = [(9, 9, 9), (255, 0, 0), (0, 0, 200)]
OPAQUE_OR_CLEAR = np.concatenate([RGB, np.where(rng.random((SIZE, SIZE, 1)) < 0.5, 0, 255).astype(np.uint8)], -1)
HALF_ALPHA = np.concatenate([RGB, np.full((SIZE, SIZE, 1), 128, np.uint8)], -1)
WHITE = np.full(3, 255, np.uint8)

# Which files the hash holds out at TEST_FRACTION (SHA-256 of the relative path, as a fraction of 2^64):
# cats/c.png 0.17, cats/big.png 0.09, dogs/palette.png 0.06, dogs/rgba.png 0.01, dogs/broken.png 0.12 are test;
# cats/a.png 0.42, dogs/grey.png 0.64, dogs/half.png 0.41, cats/truncated.png 0.84 are train.
TEST_FRACTION = 0.3


def _expected_pixels() -> dict[str, np.ndarray]:
    """Each source file's pixels as prepared, by the documented rules, computed here on their own."""
    crop = BIG[2:8]
    palette = np.array(PALETTE, np.uint8)[INDEXED]
    return {
        "cats/a.png": RGB,
        "cats/c.png": RGB[::-1],
        "cats/big.png": np.asarray(PIL.Image.fromarray(crop).resize((SIZE, SIZE), PIL.Image.Resampling.BILINEAR)),
        "dogs/grey.png": np.repeat(GREY[..., None], 3, -1),
        "dogs/palette.png": np.where((INDEXED == 0)[..., None], WHITE, palette),
        "dogs/rgba.png": np.where(OPAQUE_OR_CLEAR[..., 3:] == 0, WHITE, RGB),
        "dogs/half.png": np.rint(RGB * (128 / 255) + 255 * (1 - 128 / 255)).astype(np.uint8),
    }


def _held_out(path: str) -> bool:
    return int.from_bytes(hashlib.sha256(path.encode()).digest()[:8], "big") / 2**64 < TEST_FRACTION


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A folder of small images of every kind, in two classes, with a file that is not an image, one that is not what
    its name says and one cut short."""
    root = tmp_path_factory.mktemp("images")
    for name in ("cats", "dogs", ".hidden"):
        (root / name).mkdir()
    PIL.Image.fromarray(RGB).save(root / "cats/a.png")
    PIL.Image.fromarray(RGB[::-1]).save(root / "cats/c.png")
    PIL.Image.fromarray(BIG).save(root / "cats/big.png")
    PIL.Image.fromarray(GREY, "L").save(root / "dogs/grey.png")
    indexed = PIL.Image.fromarray(INDEXED, "P")
    indexed.putpalette([v for rgb in PALETTE for v in rgb])
    indexed.save(root / "dogs/palette.png", transparency=0)
    PIL.Image.fromarray(OPAQUE_OR_CLEAR, "RGBA").save(root / "dogs/rgba.png")
    PIL.Image.fromarray(HALF_ALPHA, "RGBA").save(root / "dogs/half.png")
    (root / "dogs/broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    PIL.Image.fromarray(BIG).save(root / "cats/truncated.png")
    whole = (root / "cats/truncated.png").read_bytes()
    (root / "cats/truncated.png").write_bytes(whole[: len(whole) // 2])  # a valid header, half its pixels
    (root / "dogs/notes.txt").write_text("not an image")
    PIL.Image.fromarray(RGB).save(root / ".hidden/x.png")
    return root


@pytest.fixture(scope="module")
def out(folder, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("prepared") / "set")
    prepare.prepare_images(str(folder), directory, image_size=SIZE, test_fraction=TEST_FRACTION, progress=False)
    return directory


def _read_all(directory, split):
    source = PreparedSource(directory, split)
    return source.read(np.arange(len(source)))


def test_prepared_images_are_the_source_pixels_after_the_stated_crop_and_resize(out):
    expected = _expected_pixels()
    for split in ("train", "test"):
        files = sorted(f for f in expected if _held_out(f) == (split == "test"))
        images, labels = _read_all(out, split)
        assert images.dtype == np.uint8 and images.shape == (len(files), SIZE, SIZE, 3)
        np.testing.assert_array_equal(labels, [0 if f.startswith("cats/") else 1 for f in files])
        for image, file in zip(images, files):
            # Half transparency is PIL's integer blend: within one level of the exact one.
            tolerance = 1 if file == "dogs/half.png" else 0
            assert np.abs(image.astype(int) - expected[file]).max() <= tolerance, file


def test_the_sidecar_describes_the_shards(out, folder):
    with open(os.path.join(out, prepared.PREPARED_SIDECAR)) as f:
        sidecar = json.load(f)
    assert sidecar["image_shape"] == [SIZE, SIZE, 3] and sidecar["dtype"] == "uint8" and sidecar["pixel_max"] == 255
    assert sidecar["num_classes"] == 2 and sidecar["class_names"] == ["cats", "dogs"]
    assert sidecar["source"]["kind"] == "images" and sidecar["source"]["path"] == str(folder)
    reasons = {s["file"]: s["reason"] for s in sidecar["skipped"]}
    assert list(reasons) == ["cats/truncated.png", "dogs/broken.png"]  # train's, then test's
    assert reasons["cats/truncated.png"].startswith("cannot be decoded (OSError: image file is truncated")
    assert reasons["dogs/broken.png"].startswith("cannot be decoded (UnidentifiedImageError")
    assert {split: entry["count"] for split, entry in sidecar["splits"].items()} == {"train": 3, "test": 4}
    for entry in sidecar["splits"].values():
        for shard in entry["shards"]:
            path = os.path.join(out, shard["file"])
            assert shard["bytes"] == os.path.getsize(path)
            assert shard["crc32"] == zlib.crc32(pathlib.Path(path).read_bytes())
    source = PreparedSource(out)
    assert len(source) == 3 and source.image_shape == (SIZE, SIZE, 3) and source.num_classes == 2
    assert source.class_names == ("cats", "dogs") and source.fingerprint == sidecar["fingerprint"]
    assert sorted(os.listdir(os.path.dirname(out))) == ["set"]  # no work directory left beside it


def test_the_fingerprint_is_of_the_data_not_of_where_it_lies(out, tmp_path):
    copy = shutil.copytree(out, tmp_path / "moved")
    assert PreparedSource(str(copy)).fingerprint == PreparedSource(out).fingerprint


def test_reads_follow_the_indices_across_shards(folder, tmp_path, monkeypatch):
    """Many shards (a small shard size): any order of rows comes back in that order, and batch k read with the
    host's batch order is batch k gathered from the whole array on the device."""
    monkeypatch.setattr(prepared, "_SHARD_BYTES", 2 * (4 + SIZE * SIZE * 3))
    directory = str(tmp_path / "sharded")
    prepare.prepare_images(str(folder), directory, image_size=SIZE, test_fraction=0, progress=False)
    source = PreparedSource(directory)
    assert len(source.sidecar["splits"]["train"]["shards"]) == 4 and len(source) == 7
    images, labels = source.read(np.arange(7))
    order = [6, 0, 3, 3, 5, 1]
    x, y = source.read(order)
    np.testing.assert_array_equal(x, images[order])
    np.testing.assert_array_equal(y, labels[order])
    key = jax.random.key(4)
    for step in (0, 1, 5):
        host = source.read(data.batch_indices_numpy(key, step, 3, len(source)))[0]
        device = data.get_batch(images, labels, key, step, 3)[0]
        np.testing.assert_array_equal(host, device)
    x, y = prepared.read_steps(source, key, 4, 3, 3)
    device = jax.vmap(lambda step: data.get_batch(images, labels, key, step, 3))(np.arange(4, 7))
    np.testing.assert_array_equal(x, device[0])
    np.testing.assert_array_equal(y, device[1])
    part = prepared.read_steps(source, key, 4, 3, 3, rows=slice(1, 3))
    np.testing.assert_array_equal(part[0], x[:, 1:3])
    np.testing.assert_array_equal(part[1], y[:, 1:3])
    assert source.read([])[0].shape == (0, SIZE, SIZE, 3)
    with pytest.raises(IndexError, match=r"\[0, 7\)"):
        source.read([7])


def test_grey_output_and_the_pixel_limit(folder, tmp_path):
    directory = str(tmp_path / "grey")
    sidecar = prepare.prepare_images(
        str(folder), directory, image_size=SIZE, test_fraction=0, channels=1, max_pixels=59, progress=False
    )
    assert {s["file"]: s["reason"] for s in sidecar["skipped"]}["cats/big.png"] == "6x10 is over max_pixels=59"
    images, _ = _read_all(directory, "train")
    assert images.shape == (6, SIZE, SIZE, 1)
    files = sorted(f for f in _expected_pixels() if f != "cats/big.png")
    np.testing.assert_array_equal(images[files.index("dogs/grey.png"), ..., 0], GREY)
    luma = np.asarray(PIL.Image.fromarray(RGB).convert("L"))
    np.testing.assert_array_equal(images[files.index("cats/a.png"), ..., 0], luma)


def test_the_resize_is_the_float_resize_of_load_dataset_within_one_level():
    """`center_crop_resize_u8` (8-bit pixels) and `dataset.center_crop_resize` (floats), the resize of
    load_dataset's image_size, apply the same crop and filter."""
    image = np.random.default_rng(1).integers(0, 256, (37, 29, 3), dtype=np.uint8)
    small = prepare.center_crop_resize_u8(PIL.Image.fromarray(image), 11).astype(np.float64)
    reference = data.center_crop_resize(image.astype(np.float32) / 255, 11) * 255
    assert np.abs(small - reference).max() <= 1 + 1e-3


def test_a_folder_without_sub_folders_is_one_class(tmp_path):
    (tmp_path / "in").mkdir()
    for i in range(3):
        PIL.Image.fromarray(RGB).save(tmp_path / "in" / f"{i}.png")
    sidecar = prepare.prepare_images(str(tmp_path / "in"), str(tmp_path / "out"), 2, test_fraction=0, progress=False)
    assert sidecar["class_names"] == ["in"] and sidecar["splits"]["train"]["count"] == 3
    assert list(sidecar["splits"]) == ["train"]


# --- bad input: one line, nothing written --------------------------------------------------------------------


def _fails_in_one_line_writing_nothing(call, match, error=prepare.PrepareError, watch=()):
    before = {str(w): sorted(os.listdir(w)) for w in watch}
    with pytest.raises(error, match=match) as caught:
        call()
    assert "\n" not in str(caught.value)
    assert {str(w): sorted(os.listdir(w)) for w in watch} == before


def test_bad_folders_and_outputs(folder, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("no images here")
    (tmp_path / "mixed" / "a").mkdir(parents=True)
    PIL.Image.fromarray(RGB).save(tmp_path / "mixed" / "top.png")
    PIL.Image.fromarray(RGB).save(tmp_path / "mixed" / "a" / "x.png")
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("a user's file")
    (tmp_path / "a_file").write_text("")
    out = str(tmp_path / "new")
    for call, match in [
        (lambda: prepare.prepare_images(str(tmp_path / "empty"), out), "holds no images.*1 other files"),
        (lambda: prepare.prepare_images(str(tmp_path / "nowhere"), out), "is not a folder"),
        (lambda: prepare.prepare_images(str(tmp_path / "mixed"), out), "both at its top level"),
        (lambda: prepare.prepare_images(str(folder), str(tmp_path / "taken")), "exists and is not an empty directory"),
        (lambda: prepare.prepare_images(str(folder), str(tmp_path / "a_file")), "exists and is not an empty"),
        (lambda: prepare.prepare_images(str(folder), out, test_fraction=1), r"test_fraction must lie in \[0, 1\)"),
        (
            lambda: prepare.prepare_images(str(folder), out, test_fraction=1e-9),
            "none of its 9 images falls in the test",
        ),
        (lambda: prepare.prepare_images(str(folder), out, image_size=0), "image_size must be a positive integer"),
        (lambda: prepare.prepare_images(str(folder), out, channels=4), "channels must be 1"),
    ]:
        _fails_in_one_line_writing_nothing(call, match, watch=[tmp_path])
    assert (tmp_path / "taken" / "keep.txt").read_text() == "a user's file"


def test_an_empty_out_directory_is_used(folder, tmp_path):
    (tmp_path / "empty_out").mkdir()
    prepare.prepare_images(str(folder), str(tmp_path / "empty_out"), SIZE, TEST_FRACTION, progress=False)
    assert os.path.isfile(tmp_path / "empty_out" / prepared.PREPARED_SIDECAR)


def test_damaged_prepared_directories(out, tmp_path):
    def damaged(name, change):
        copy = shutil.copytree(out, tmp_path / name)
        change(str(copy))
        return str(copy)

    shard = "train-00000.array_record"
    no_sidecar = damaged("no_sidecar", lambda d: os.remove(os.path.join(d, prepared.PREPARED_SIDECAR)))
    missing = damaged("missing", lambda d: os.remove(os.path.join(d, shard)))
    short = damaged("short", lambda d: os.truncate(os.path.join(d, shard), 100))
    garbled = damaged("garbled", lambda d: pathlib.Path(d, prepared.PREPARED_SIDECAR).write_text("{not json"))
    edited = damaged("edited", lambda d: _edit_sidecar(d, lambda s: s.update(num_classes=3)))

    def flip_a_byte(d):
        with open(os.path.join(d, shard), "r+b") as f:
            f.seek(60)
            byte = f.read(1)
            f.seek(60)
            f.write(bytes([byte[0] ^ 0xFF]))

    flipped = damaged("flipped", flip_a_byte)
    for call, match in [
        (lambda: PreparedSource(no_sidecar), "has no prepared.json"),
        (lambda: PreparedSource(missing), f"shard {shard} is missing"),
        (lambda: PreparedSource(short), f"shard {shard} has 100 bytes, not the"),
        (lambda: PreparedSource(garbled), "prepared.json is damaged"),
        (lambda: PreparedSource(edited), "fingerprint does not match"),
        (lambda: PreparedSource(out, "validation"), r"has no 'validation' split; it has \['test', 'train'\]"),
        (lambda: PreparedSource(flipped).verify(), f"shard {shard} does not match its CRC-32"),
    ]:
        _fails_in_one_line_writing_nothing(call, match, DatasetUnavailableError)
    PreparedSource(out).verify()


def _edit_sidecar(directory, change):
    path = pathlib.Path(directory, prepared.PREPARED_SIDECAR)
    sidecar = json.loads(path.read_text())
    change(sidecar)
    path.write_text(json.dumps(sidecar))


def _prepare_command(*args):
    return subprocess.run(
        [sys.executable, "-m", "experiments.prepare", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300
    )


def test_the_command_prepares_a_folder_and_says_what_it_left_out(folder, tmp_path):
    out = str(tmp_path / "cli")
    done = _prepare_command("--images", str(folder), "--out", out, "--image_size", "4", "--test_fraction", "0.3")
    assert done.returncode == 0, done.stderr
    assert f"Wrote {out}: train 3, test 4 images of 4x4x3 (uint8), 2 classes" in done.stdout
    assert "2 files left out" in done.stdout and "dogs/broken.png: cannot be decoded" in done.stdout
    for args, match in [
        (["--images", str(folder), "--out", out], "exists and is not an empty directory"),
        (["--tfds", "no_such_data_set_here", "--out", str(tmp_path / "t")], "TFDS knows no such data set"),
        (["--out", str(tmp_path / "t")], "give exactly one of --images"),
    ]:
        done = _prepare_command(*args)
        assert done.returncode == 2 and done.stdout == ""
        assert done.stderr.count("\n") == 1 and done.stderr.startswith("error: ") and match in done.stderr
    assert sorted(os.listdir(tmp_path)) == ["cli"]


# --- TFDS ----------------------------------------------------------------------------------------------------


def test_tfds_through_mock_data(tmp_path):
    """A TFDS data set (tfds.testing.mock_data: random examples, offline) comes out as TFDS serves it, or centre-
    cropped and resized with image_size."""
    import tensorflow_datasets as tfds

    with tfds.testing.mock_data(num_examples=5, policy=tfds.testing.MockPolicy.USE_CODE):
        sidecar = prepare.prepare_tfds("cifar10", str(tmp_path / "cifar10"), progress=False)
        expected = tfds.builder("cifar10").as_data_source(split="test")
        expected = [expected[i] for i in range(len(expected))]
        faces = prepare.prepare_tfds("celeb_a", str(tmp_path / "faces"), image_size=8, progress=False)
        for name, out, match in [
            ("no_such_data_set_here", "new", "TFDS knows no such data set"),
            ("cifar10", "cifar10", "exists and is not an empty directory"),
        ]:
            call = lambda: prepare.prepare_tfds(name, str(tmp_path / out), progress=False)  # noqa: B023
            _fails_in_one_line_writing_nothing(call, match, watch=[tmp_path])
    assert sidecar["image_shape"] == [32, 32, 3] and sidecar["num_classes"] == 10 and sidecar["pixel_max"] == 255
    assert sidecar["source"] == {
        "kind": "tfds",
        "name": "cifar10",
        "data_dir": None,
        "splits": {"train": "train", "test": "test"},
        "image_size": None,
        "method": "TFDS pixels as stored",
    }
    images, labels = _read_all(str(tmp_path / "cifar10"), "test")
    np.testing.assert_array_equal(images, [e["image"] for e in expected])
    np.testing.assert_array_equal(labels, [e["label"] for e in expected])
    assert faces["image_shape"] == [8, 8, 3] and faces["class_names"] == ["celeb_a"]
    assert _read_all(str(tmp_path / "faces"), "train")[0].shape == (5, 8, 8, 3)


def test_a_tfds_data_set_not_prepared_here_is_one_line(tmp_path):
    call = lambda: prepare.prepare_tfds("mnist", str(tmp_path / "out"), data_dir=str(tmp_path))
    _fails_in_one_line_writing_nothing(
        call, "not prepared in a random-access format.*tfds build mnist", watch=[tmp_path]
    )


def test_the_reading_benchmark_writes_its_record(tmp_path):
    """benchmarks/read_throughput.py on a tiny set (its numbers are not checked here: this machine is shared)."""
    from benchmarks import read_throughput

    path = tmp_path / "record.json"
    args = ["--num_images", "40", "--image_size", "4", "--batch_size", "8", "--batches", "2", "--repeats", "2"]
    record = read_throughput.main([*args, "--per_element_batches", "1", "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    assert record["command"].startswith("python -m benchmarks.read_throughput --num_images 40")
    result = record["result"]
    assert result["num_images"] == 40 and result["image_shape"] == [4, 4, 3] and result["batch_size"] == 8
    assert len(result["images_per_s_repeats"]) == 2 and result["images_per_s"] > 0
    assert {"versions", "machine", "load_average_before_1_5_15_min", "other_busy_processes_after", "note"} <= set(
        record
    )
    assert record["versions"]["grain"] == "0.2.18"

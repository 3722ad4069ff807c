"""The two placements of one pipeline (issue 28): images stay uint8 until the step, where a numpy-built table gives
today's f32 values bit for bit; a streamed run (the host reads each chunk's batches) trains to the very parameters of
an on-device run, resumes after SIGKILL to the uninterrupted result, and refuses other data or a placement that
cannot hold the data in one line."""

import json
import os
import sys

import jax
import numpy as np
import pytest

from experiments import main as experiments_main
from gen_jax import checkpoint, data, keys, tasks, train
from gen_jax.data import stream

from conftest import (
    kill_after_checkpoint,
    read_jsonl,
    snapshot,
    tiny_ae_config,
    tiny_vae_config,
    trees_equal,
)

LOOP = dict(num_steps=20, log_every=5, eval_every=20, checkpoint_every=10, write_figures=False)


def fashion_like(num: int = 96, seed: int = 0) -> data.Dataset:
    """Fashion-MNIST-shaped data: u8[num, 28, 28, 1] pixels (all 256 levels) as f32 pixel / 255, ten classes."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (2 * num, 28, 28, 1), dtype=np.uint8)
    images = data.unit_pixels(pixels, 255)
    labels = (np.arange(2 * num) % 10).astype(np.int32)
    names = tuple(str(i) for i in range(10))
    return data.Dataset("fashion_like", images[:num], labels[:num], images[num:], labels[num:], 10, names)


def write_prepared(directory, num: int = 80, shape=(8, 8, 3), seed: int = 0) -> None:
    """A tiny prepared directory of random u8 images (labels i % 3), train and test splits."""
    rng = np.random.default_rng(seed)
    os.makedirs(directory, exist_ok=True)
    splits = {
        split: data.write_shards(
            str(directory), split, ((rng.integers(0, 256, shape, dtype=np.uint8), i % 3) for i in range(count)), shape
        )
        for split, count in (("train", num), ("test", num // 2))
    }
    sidecar = {"image_shape": list(shape), "dtype": "uint8", "pixel_max": 255, "num_classes": 3}
    sidecar.update(class_names=["a", "b", "c"], splits=splits, source={"kind": "random", "seed": seed}, skipped=[])
    data.write_sidecar(str(directory), sidecar)


def final_state(config, dataset, workdir):
    """The newest checkpoint of `workdir` as numpy arrays, and its step."""
    task = tasks.get(config.family).make_task(config, dataset)
    state, step = checkpoint.restore_latest(os.path.join(workdir, "checkpoints"), task.init_state(jax.random.key(0)))
    return jax.tree.map(np.asarray, state), step


def train_in(config, dataset, workdir, source=None):
    """Trains `config` in `workdir` through the loop (on `source` where given); returns (final state, step, metrics
    without timings)."""
    task = tasks.get(config.family).make_task(config, dataset)
    train.prepare_workdir(str(workdir), config.to_dict(), task)
    images = data.preprocess(dataset.train_images, config.binarization)
    train.train(config, str(workdir), task, images, dataset.train_labels, show_progress=False, source=source)
    logged = [{k: v for k, v in r.items() if "per_sec" not in k} for r in read_jsonl(workdir / "metrics.jsonl")]
    return (*final_state(config, dataset, workdir), logged)


# --- uint8 until the step ------------------------------------------------------------------------------------------


def test_codes_and_their_table_are_the_images_bit_for_bit(digits):
    for images in (digits.train_images, fashion_like().train_images, data.preprocess(digits.train_images, "static")):
        pixels = data.encode_pixels(images)
        assert isinstance(pixels, data.Pixels) and pixels.codes.dtype == np.uint8 and pixels.table.shape == (256,)
        looked_up = np.asarray(jax.jit(data.decode_pixels)(pixels))
        assert np.array_equal(looked_up.view(np.uint32), images.view(np.uint32))
    many = np.linspace(0, 1, 300, dtype=np.float32).reshape(300, 1, 1, 1)
    assert data.encode_pixels(many) is many  # more than 256 values travel as f32
    assert np.array_equal(data.unit_table(255)[:256], data.unit_pixels(np.arange(256, dtype=np.uint8), 255))


def test_the_table_keeps_numpys_values_where_xlas_division_does_not():
    """Why a table: XLA's x / 255 is not numpy's for some pixels; the table's lookup is, for all 256."""
    pixels = np.arange(256, dtype=np.uint8)
    numpy_values = data.unit_pixels(pixels, 255)
    looked_up = np.asarray(jax.jit(data.decode_pixels)(data.Pixels(pixels, data.unit_table(255))))
    assert np.array_equal(looked_up.view(np.uint32), numpy_values.view(np.uint32))


@pytest.mark.parametrize(
    "family_config, data_name, binarization",
    [
        (tiny_vae_config, "digits", "dynamic"),
        (tiny_ae_config, "fashion_like", "none"),
        (tiny_ae_config, "fashion_like", "static"),
    ],
)
def test_uint8_steps_train_to_the_f32_steps_parameters(digits, family_config, data_name, binarization):
    """The fused program on u8 codes (looked up in the step) and on today's f32 images: the same parameters after
    12 steps, bit for bit."""
    dataset = digits if data_name == "digits" else fashion_like()
    config = family_config(binarization=binarization, batch_size=16)
    task = tasks.get(config.family).make_task(config, dataset)
    images = data.preprocess(dataset.train_images, binarization)
    pixels = data.encode_pixels(images)
    assert isinstance(pixels, data.Pixels)
    run = train.jit_multi_step(task.train_step, config.batch_size)
    streams = keys.loop_streams(config.seed)
    labels = jax.device_put(dataset.train_labels)
    states = [
        run(task.init_state(streams["init"]), on_device, labels, streams["train"], streams["data"], 12)[0]
        for on_device in (jax.device_put(images), jax.device_put(pixels))
    ]
    assert int(states[1].step) == 12
    assert trees_equal(states[0].params, states[1].params)


# --- streamed = on the device --------------------------------------------------------------------------------------


def test_streamed_trains_to_the_on_device_parameters_and_metrics(digits, tmp_path):
    runs = {
        placement: train_in(tiny_vae_config(**LOOP, placement=placement), digits, tmp_path / placement)
        for placement in ("device", "stream")
    }
    (device, step, device_log), (streamed, _, streamed_log) = runs["device"], runs["stream"]
    assert step == 20 and trees_equal(device, streamed)
    assert device_log == streamed_log and len(device_log) >= 4


def test_a_prepared_folder_streamed_equals_it_on_the_device_and_in_memory(tmp_path):
    """A prepared directory read by rows (streamed, or whole on the device, u8 and a table) trains to the parameters
    of today's path (the directory loaded whole as f32), under static binarisation too."""
    directory = tmp_path / "prepared"
    write_prepared(directory)
    dataset = data.load_dataset(str(directory))
    for binarization in ("none", "static"):
        base = dict(LOOP, dataset=str(directory), binarization=binarization, batch_size=16, model__conv_features=(8,))
        results = {
            placement: train_in(
                tiny_ae_config(**base, placement=placement.replace("memory", "device"), model__architecture="conv"),
                dataset,
                tmp_path / f"{binarization}_{placement}",
                None if placement == "memory" else data.PreparedSource(str(directory)),
            )
            for placement in ("memory", "device", "stream")
        }
        memory = results.pop("memory")
        for placement, result in results.items():
            assert result[1] == 20 and trees_equal(memory[0], result[0]), (binarization, placement)
            assert result[2] == memory[2], (binarization, placement)
    with open(tmp_path / "none_stream" / "data.json") as f:
        assert json.load(f)["fingerprint"] == data.PreparedSource(str(directory)).fingerprint


def test_a_killed_streamed_run_resumes_to_the_uninterrupted_result(digits, tmp_path, capsys):
    """SIGKILL in a streamed `experiments.main` run after a checkpoint, then the same command: the final state and
    the logged metrics equal those of a run never interrupted."""
    args = [
        "--config.num_steps=400",
        "--config.checkpoint_every=20",
        "--config.eval_every=400",
        "--config.log_every=20",
        "--config.keep_checkpoints=30",
        "--config.model.hidden=(32,)",
        "--config.model.latent_dim=2",
        "--config.batch_size=32",
        "--config.iwae_k=0",
        "--config.write_figures=False",
        "--config.placement=stream",
    ]
    from test_main import CONFIG, config_of

    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert experiments_main.run_or_report(config_of(args), str(straight)) is not None
    command = [sys.executable, "-m", "experiments.main", "--config", CONFIG, f"--workdir={killed}", *args]
    stopped_at = kill_after_checkpoint(command, killed, 40)
    assert stopped_at < 400
    capsys.readouterr()
    assert experiments_main.run_or_report(config_of(args), str(killed)) is not None
    assert f"Resumed from the checkpoint at step {stopped_at}" in capsys.readouterr().out
    config = config_of(args)
    (a, step_a), (b, step_b) = final_state(config, digits, straight), final_state(config, digits, killed)
    assert step_a == step_b == 400 and trees_equal(a, b)
    logged = lambda w: [{k: v for k, v in r.items() if "per_sec" not in k} for r in read_jsonl(w / "metrics.jsonl")]  # noqa: E731
    assert logged(straight) == logged(killed)


# --- refusals, in one line -----------------------------------------------------------------------------------------


def test_resuming_on_other_data_is_refused_in_one_line(tmp_path):
    directory, other = tmp_path / "prepared", tmp_path / "other"
    write_prepared(directory, seed=0)
    write_prepared(other, seed=1)
    dataset = data.load_dataset(str(directory))
    config = tiny_ae_config(**{**LOOP, "num_steps": 10}, dataset=str(directory), batch_size=16, placement="stream")
    workdir = tmp_path / "run"
    train_in(config, dataset, workdir, data.PreparedSource(str(directory)))
    before = snapshot(workdir)
    with pytest.raises(data.DataMismatchError) as caught:
        train_in(override_steps(config, 20), dataset, workdir, data.PreparedSource(str(other)))
    message = str(caught.value)
    assert "\n" not in message and "other data" in message and str(workdir) in message, message
    assert snapshot(workdir) == before
    train_in(override_steps(config, 20), dataset, workdir, data.PreparedSource(str(directory)))  # the same data resumes


def override_steps(config, num_steps: int):
    config = config.copy_and_resolve_references()
    config.num_steps = num_steps
    return config


def test_device_placement_too_large_is_refused_before_the_workdir(tmp_path, capsys, monkeypatch):
    from test_main import config_of

    monkeypatch.setattr(stream, "device_memory_bytes", lambda: 100_000)
    workdir = tmp_path / "run"
    args = ["--config.num_steps=4", "--config.placement=device", "--config.write_figures=False"]
    capsys.readouterr()
    assert experiments_main.run_or_report(config_of(args), str(workdir)) is None
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: config.placement='device' cannot hold the data") and "\n" not in err, err
    assert "97.7 KB" in err and "50 KB" in err, err  # the size (1,437 images of 8x8 u8 and their labels), the budget
    assert not workdir.exists()
    placement, why = stream.choose_placement("auto", 97_728, 100_000)
    assert placement == "stream" and "does not fit" in why


@pytest.mark.slow
@pytest.mark.timeout(600)  # its memory runs are child processes the benchmark waits for
def test_the_streaming_benchmark_writes_its_record(tmp_path):
    """benchmarks/stream_throughput.py on tiny sets (its numbers are not checked here: this machine is shared)."""
    from benchmarks import stream_throughput

    path = tmp_path / "record.json"
    args = [
        "--config",
        "experiments/configs/vae_digits.py",
        "--image_size",
        "8",
        "--batch_size",
        "8",
        "--chunk",
        "2",
        "--chunks",
        "1",
        "--repeats",
        "2",
    ]
    args += ["--num_images", "64", "--rss_images", "100", "--rss_test_images", "20", "--rss_image_size", "8"]
    args += ["--rss_steps", "2"]
    record = stream_throughput.main([*args, "--scratch", str(tmp_path), "--json", str(path)])
    assert json.loads(path.read_text()) == json.loads(json.dumps(record))
    result, memory = record["result"], record["memory"]
    assert result["image_shape"] == [8, 8, 3] and result["batch_size"] == 8
    assert all(len(rates) == 2 and min(rates) > 0 for rates in result["steps_per_s"].values())
    assert (
        result["stream_over_device"] == result["median_steps_per_s"]["stream"] / result["median_steps_per_s"]["device"]
    )
    assert memory["images"] == 100 and memory["test_images"] == 20 and memory["steps"] == 2
    command = memory["command"]
    assert memory["peak_rss_bytes"] > 0 and command["peak_rss_bytes"] > 0
    assert command["command"].startswith("python -m experiments.main --config")
    assert "--config.placement=stream" in command["command"] and "--config.num_steps=2" in command["command"]
    assert {"note", "load_average_after_1_5_15_min", "meets_ratio_target", "meets_rss_target"} <= set(record)
    assert os.listdir(tmp_path) == ["record.json"]  # the generated sets are removed

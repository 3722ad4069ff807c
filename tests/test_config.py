"""gen_jax/config.py, gen_jax/keys.py and the family registry (gen_jax/tasks): configs are locked data checked
once, random streams come from one table, families are found by name."""

import jax
import pytest

from gen_jax import config as config_lib
from gen_jax import keys, tasks

from conftest import tiny_vae_config


def test_a_field_the_config_does_not_define_cannot_be_set():
    config = tiny_vae_config()
    with pytest.raises(AttributeError):
        config.model.hiden = (8,)
    with pytest.raises(AttributeError):
        config.generator_hidden = (8,)


def test_families_are_found_by_name_and_a_wrong_name_lists_them():
    assert {"ae", "vae", "gan", "classifier", "cvae"} <= set(tasks.names())
    assert tasks.get("vae").default_config().family == "vae"
    for name in tasks.names():  # each family's own default config names it
        assert tasks.get(name).default_config().family == name
    with pytest.raises(config_lib.ConfigError, match="config.family must be one of .*'ae', .*got 'diffusion'"):
        tasks.get("diffusion")
    with pytest.raises(config_lib.ConfigError, match="config.family must be one of"):
        tasks.get("../train")


def test_streams_are_fold_ins_of_the_seed_by_their_fixed_tags():
    for name, tag in keys.TAGS.items():
        expected = jax.random.fold_in(jax.random.key(7), tag)
        assert (jax.random.key_data(keys.stream(7, name)) == jax.random.key_data(expected)).all()
    assert len(set(keys.TAGS.values())) == len(keys.TAGS)


def test_the_signature_is_the_model_sub_config_without_compute_choices():
    config = tiny_vae_config()
    signature = config_lib.signature(config, (8, 8, 1), parameter_ema=True)
    added = config_lib.ADDED_MODEL_FIELDS["vae"]  # at the value runs written before them had: left out
    assert signature == {
        "family": "vae",
        "model": {k: v for k, v in config_lib.plain(config.model).items() if k not in added},
        "image_shape": [8, 8, 1],
        "parameter_ema": True,
    }
    config.compute_dtype = "bfloat16"
    config.conv_impl = "flax"
    assert config_lib.signature(config, (8, 8, 1), parameter_ema=True) == signature

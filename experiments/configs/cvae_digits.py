"""A conditional VAE on scikit-learn's 8×8 digits: MLP 64+10-256-128-8, Bernoulli on dynamically binarised pixels,
3,000 steps, the digit's class given to both networks.

    python -m experiments.main --config experiments/configs/cvae_digits.py --workdir runs/cvae_digits

About 20 s on 2 CPU cores; figures/samples_by_class.png decodes the same z under every class.
"""

from gen_jax.tasks import cvae


def get_config():
    config = cvae.default_config()
    config.name = "cvae_digits"
    config.dataset = "digits"
    config.binarization = "dynamic"
    config.model.hidden = (256, 128)
    config.model.latent_dim = 8
    config.batch_size = 64
    config.num_steps = 3000
    config.log_every = 100
    config.eval_every = 500
    config.checkpoint_every = 1000
    return config

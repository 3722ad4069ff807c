"""An MLP AutoEncoder 64-256-128-8 on scikit-learn's 8×8 digits, trained with MSE.  `--config.model.hidden='()'`
makes it the linear AutoEncoder, `--config.model.architecture=conv` convolutional.

    python -m experiments.main --config experiments/configs/ae_digits.py --workdir runs/ae_digits

About a minute on 2 CPU cores; its test MSE per pixel is in docs/results.md's AutoEncoder table (k = 8 row, "AE").
"""

from gen_jax.tasks import ae


def get_config():
    config = ae.default_config()
    config.name = "ae_digits"
    config.dataset = "digits"
    config.model.hidden = (256, 128)
    config.model.latent_dim = 8
    config.batch_size = 64
    config.num_steps = 4000
    config.log_every = 100
    config.eval_every = 500
    config.checkpoint_every = 1000
    return config

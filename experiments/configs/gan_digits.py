"""The original GAN's recipe on scikit-learn's 8×8 digits: MLPs for G and D, the non-saturating loss, dropout in D
(Goodfellow et al. 2014; LeakyReLU in place of maxout, Adam as recommended by Radford et al. 2016).

    python -m experiments.main --config experiments/configs/gan_digits.py --workdir runs/gan_digits

About 2 minutes on 2 CPU cores (the reference classifier, trained once, adds a minute); seed 0: classifier FID 11.6
against a floor of 8.6, precision 0.775, recall 0.944 (results/superseded/gan_digits.json); seeds 0–2 in one sweep:
FID 12.9 ± 2.8, precision 0.789, recall 0.925 (results/sweep_gan_digits.json; docs/results.md's sample-quality table).
"""

from gen_jax.tasks import gan


def get_config():
    config = gan.default_config()
    config.name = "gan_digits"
    config.dataset = "digits"
    config.model.architecture = "mlp"
    config.model.latent_dim = 64
    config.model.negative_slope = 0.2
    config.batch_size = 64
    for optim in (config.optim, config.d_optim):
        optim.learning_rate = 2e-4
        optim.b1 = 0.5
    config.num_steps = 10_000
    config.log_every = 200
    config.eval_every = 1000
    config.checkpoint_every = 2000
    config.eval_num_samples = 360  # the digits test split: the final score uses the same count
    return config

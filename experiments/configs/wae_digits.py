"""A Wasserstein AutoEncoder (WAE-MMD) on scikit-learn's 8×8 digits: MLP 64-256-128-8, Bernoulli reconstruction of
dynamically binarised pixels, the codes pulled towards N(0, I) by the IMQ-kernel MMD (λ = 10), 3,000 steps; the
summary scores samples z ~ N(0, I) with the digits reference classifier.  The template family (gen_jax/tasks/wae.py).
    python -m experiments.main --config experiments/configs/wae_digits.py --workdir runs/wae_digits
24 s on a shared 2-core machine (the reference classifier already trained); seed 0: test MMD² 0.0007, test MSE
0.062 per pixel, classifier FID 12.4 against a floor of 8.6, precision 0.55, recall 0.94.
"""

from gen_jax.tasks import wae


def get_config():
    config = wae.default_config()
    config.name = "wae_digits"
    config.dataset = "digits"
    config.binarization = "dynamic"
    config.model.hidden = (256, 128)
    config.model.latent_dim = 8
    config.batch_size = 64
    config.num_steps = 3000
    config.log_every = 100
    config.eval_every = 500
    config.checkpoint_every = 1000
    config.sample_quality.enabled = True
    return config

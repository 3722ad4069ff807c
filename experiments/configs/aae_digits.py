"""An Adversarial AutoEncoder on scikit-learn's 8×8 digits: MLP 64-256-128-2, Bernoulli reconstruction of dynamically
binarised pixels, a 256-256 discriminator pushing the 2-D codes towards N(0, I), 3,000 steps.

    python -m experiments.main --config experiments/configs/aae_digits.py --workdir runs/aae_digits

The 2-D code is drawn as it is (figures/latent_scatter.png, beside the VAE's of `vae_2d` with
--config.dataset=digits), with the decoder over the prior's quantiles (figures/manifold.png) and samples z ~ N(0, I)
(figures/samples.png); the summary scores those samples with the digits reference classifier.  Training took 59 s
on a shared 2-core machine (load ~10); the codes match N(0, I)'s moments (code_prior_frechet 0.023), but a 2-D code
limits the samples: classifier FID 50.2, recall 0.053 (seed 0, results/superseded/aae_digits.json); over seeds 0–2 in
one sweep FID 47.0 ± 4.5, recall 0.041 ± 0.003 (results/sweep_aae_digits.json; the sample-quality table).
"""

from gen_jax.tasks import aae


def get_config():
    config = aae.default_config()
    config.name = "aae_digits"
    config.dataset = "digits"
    config.binarization = "dynamic"
    config.model.hidden = (256, 128)
    config.model.latent_dim = 2
    config.batch_size = 64
    config.num_steps = 3000
    config.log_every = 100
    config.eval_every = 500
    config.checkpoint_every = 1000
    config.sample_quality.enabled = True
    return config

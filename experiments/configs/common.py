"""Defaults every experiment config starts from; each config file overrides what makes it that experiment."""

import ml_collections


def base_config() -> ml_collections.ConfigDict:
    config = ml_collections.ConfigDict()
    config.name = "base"
    config.model = "vae"
    config.seed = 0
    config.dataset = "digits"
    config.data_dir = ""  # "" = the default places (see gen_jax/data.py)
    config.binarization = "none"  # "none" | "static" (> 0.5) | "dynamic" (Bernoulli draw per batch)
    config.batch_size = 128
    config.num_steps = 1000
    config.learning_rate = 1e-3
    config.log_every = 50
    config.eval_every = 500
    config.checkpoint_every = 500
    config.keep_checkpoints = 3
    config.write_figures = True  # figures/ and report.md at the end (sweeps and tests may skip them)
    config.fsdp = False  # split large parameter/optimizer arrays over the devices instead of replicating them
    config.latent_dim = 2
    config.compute_dtype = "float32"  # "float32" | "bfloat16": matmuls/convolutions only; parameters stay float32
    config.eval_batch_size = 500
    return config


def vae_config() -> ml_collections.ConfigDict:
    config = base_config()
    config.model = "vae"
    config.architecture = "mlp"  # "mlp" | "conv"
    config.hidden = (500,)  # MLP widths, encoder order (the decoder mirrors them)
    config.conv_features = (32, 64)  # stride-2 conv widths, encoder order
    config.conv_hidden = 256
    config.likelihood = "bernoulli"  # "bernoulli" | "gaussian"
    config.learn_scale = False  # Gaussian only: learn one log standard deviation
    config.gaussian_log_scale = 0.0  # Gaussian only: the fixed log standard deviation
    config.beta = 1.0  # weight of the KL term; 1 is the ELBO
    config.eval_iwae_k = 0  # IWAE samples in the periodic evaluations (0 = off)
    config.iwae_k = 1000  # IWAE samples in the final evaluation (summary.json)
    # EMA of the parameters (steps.TrainState), used for every evaluation, sample and figure; 0 = the last iterate.
    # 0.99 (a ~100-step window) beat 0.998 and 0.999 on the 784-500-20 Fashion-MNIST VAE (10 epochs, 3 seeds).
    config.ema_decay = 0.99
    add_sample_quality_fields(config, enabled=False)
    return config


def ae_config() -> ml_collections.ConfigDict:
    config = base_config()
    config.model = "ae"
    config.architecture = "mlp"  # "mlp" | "conv"
    config.hidden = (512, 256)  # MLP widths, encoder order (the decoder mirrors them); () = the linear AE
    config.conv_features = (32, 64)  # stride-2 conv widths, encoder order
    config.conv_hidden = 256
    config.reconstruction_loss = "mse"  # "mse" (pixels as values) | "bernoulli" (pixels as probabilities)
    config.lr_schedule = "cosine"  # "constant" | "cosine" (Adam's rate decays to 0 at num_steps)
    return config


def add_sample_quality_fields(config: ml_collections.ConfigDict, enabled: bool) -> None:
    """The fields of the sample-quality evaluation (gen_jax/sample_quality.py), shared by every generative family."""
    config.sample_quality = enabled  # classifier FID, classifier score, precision/recall in summary.json
    config.num_samples = 10_000  # n: samples scored, reference and floor images (capped at the test split size)
    config.classifier_dir = ""  # "" = <repo>/runs/classifiers; the reference classifier is trained there once


def gan_config() -> ml_collections.ConfigDict:
    """The TensorFlow DCGAN tutorial's choices (Adam 1e-4, batch 256, non-saturating loss, latent 100)."""
    config = base_config()
    config.model = "gan"
    config.architecture = "dcgan"  # "mlp" | "dcgan"
    config.loss = "non_saturating"  # "non_saturating" | "minimax" | "hinge" | "wgan_gp"
    config.conditional = False  # labels into G (one-hot with z) and D (projection)
    config.latent_dim = 100
    config.g_hidden = (256, 512)  # MLP generator widths
    config.d_hidden = (512, 256)  # MLP discriminator widths
    config.g_features = (256, 128, 64)  # DCGAN: coarse-map channels, then each hidden transposed conv
    config.d_features = (64, 128)  # DCGAN: stride-2 conv channels
    config.kernel_size = 5  # DCGAN kernel side
    # DCGAN: how G's transposed convolutions are computed; each is the same function of the same parameters (so a
    # checkpoint resumes under any).  "transpose" = Flax's nn.ConvTranspose (and nn.Conv in D: the tutorial's exact
    # computation); "dual_grad" = the same with a kernel gradient XLA:CPU computes ~50x faster (and D's gradients
    # in the layout XLA:CPU keeps fast inside lax.scan); "subpixel" = sub-pixel convolution.
    config.upsampling = "dual_grad"
    config.negative_slope = 0.3  # LeakyReLU slope in both networks
    config.d_dropout = 0.3  # dropout in D while training (must be 0 for wgan_gp)
    config.spectral_norm = False  # spectral normalisation of every D weight
    config.d_steps = 1  # D updates per G update (each on the step's batch and fake batch)
    config.gp_weight = 10.0  # λ of WGAN-GP's gradient penalty (loss="wgan_gp" only)
    config.ema_decay = 0.999  # EMA of G's weights used for samples and metrics
    config.batch_size = 256
    config.learning_rate = 1e-4  # G's Adam learning rate
    config.d_learning_rate = 1e-4  # D's Adam learning rate
    config.adam_b1 = 0.9  # Keras' default, as in the tutorial
    config.adam_b2 = 0.999
    config.eval_num_samples = 1000  # samples for the periodic FID (the final one uses num_samples)
    config.snapshot_samples = 64  # fixed-noise images saved at every evaluation (figures/progress)
    add_sample_quality_fields(config, enabled=True)
    return config

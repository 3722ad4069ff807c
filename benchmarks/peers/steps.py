"""One PyTorch training step of each peer, doing the work of gen_jax's step, eagerly or under `torch.compile`.

* VAE (`steps.make_train_step` of `tasks/vae.py`): a forward pass with z = mean + σ ⊙ ε, the Bernoulli
  log-likelihood x·l − softplus(l) summed over pixels and the analytic KL, −ELBO averaged over the batch; one
  backward pass; Adam; the parameters' EMA with decay min(d, (1 + t)/(10 + t)); the gradient's global norm.
* GAN (`steps.make_gan_train_step`): z ~ N(0, I); the generator's forward pass once, in training mode (BatchNorm
  statistics move once per step); `d_steps` discriminator updates on [real; fake] with dropout (the logistic loss);
  one generator update through the updated discriminator (the non-saturating loss; D's weights need no gradient
  there, so they are excluded as `tasks/gan.py` excludes them); Adam for each; the EMA of G's parameters and
  BatchNorm statistics; both gradients' norms.

`compiled` wraps each forward-and-loss function and each optimizer-and-EMA update in `torch.compile` (on CUDA the
forward-and-loss functions in mode "reduce-overhead", i.e. CUDA graphs); the backward passes are those compiled
by AOTAutograd.  `precision="bf16"` runs the forward passes under `torch.autocast` in bfloat16 (parameters and
optimizer state stay float32).  Metrics stay on the device: a step never waits for the device.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.peers import networks

MODES = ("eager", "compiled")


def set_threads() -> int:
    """Sets PyTorch's intra-op threads to the host's CPU count (its default may be lower) and returns it."""
    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def _adam(params, optim) -> torch.optim.Adam:
    """PyTorch's Adam with the settings of a gen_jax optimizer sub-config (only constant-rate Adam has a peer)."""
    if optim.name != "adam" or optim.schedule != "constant" or optim.clip_norm:
        raise ValueError(
            f"the peers mirror constant-rate Adam without clipping; got {optim.name!r}, {optim.schedule!r}"
        )
    return torch.optim.Adam(params, lr=optim.learning_rate, betas=(optim.b1, optim.b2), eps=optim.eps)


def _ema_update(averages: list[torch.Tensor], values: list[torch.Tensor], step: torch.Tensor, decay: float) -> None:
    """averages ← averages + (1 − min(decay, (1 + step)/(10 + step))) · (values − averages), in place
    (`steps.ema_decay_at` and `optax.incremental_update`)."""
    weight = 1.0 - torch.clamp((1.0 + step) / (10.0 + step), max=decay)
    for average, value in zip(averages, values):
        average.lerp_(value, weight)


def _grad_norm(params) -> torch.Tensor:
    """The global L2 norm of the parameters' gradients (`optax.tree.norm(grads)`)."""
    return torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in params]))


def _update_and_average(optimizer, params, averages, tracked, step: torch.Tensor, decay: float) -> torch.Tensor:
    """One optimizer step on `params`, then the EMA of `tracked` (params, and batch statistics where the step keeps
    them) and step += 1; returns the gradients' global norm before the step."""
    norm = _grad_norm(params)
    optimizer.step()
    with torch.no_grad():
        _ema_update(averages, tracked, step, decay)
        step.add_(1.0)
    return norm


def _make_vae_step(modules, config, wrap, autocast) -> Callable[[torch.Tensor], dict]:
    if config.model.likelihood != "bernoulli" or config.objective != "elbo" or config.beta != 1.0:
        raise ValueError(
            "the VAE peer mirrors the ELBO with a Bernoulli likelihood and beta = 1; got "
            f"{config.model.likelihood!r}, objective {config.objective!r}, beta {config.beta}"
        )
    vae = modules["vae"]
    params = list(vae.parameters())
    optimizer = _adam(params, config.optim)
    averages = [p.detach().clone() for p in params]
    step = torch.zeros((), device=params[0].device)

    @wrap(forward=True)
    def loss_fn(x):
        with autocast():
            logits, mean, log_var = vae(x)
        logits, mean, log_var, x = logits.float(), mean.float(), log_var.float(), x.flatten(1)
        log_likelihood = torch.sum(x * logits - F.softplus(logits), dim=-1)
        kl = 0.5 * torch.sum(torch.exp(log_var) + mean**2 - 1.0 - log_var, dim=-1)
        return torch.mean(kl - log_likelihood)

    @wrap(forward=False)
    def update():
        return _update_and_average(optimizer, params, averages, params, step, config.ema_decay)

    def train_step(x):
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(x)
        loss.backward()
        return {"loss": loss.detach(), "grad_norm": update()}

    return train_step


def _make_gan_step(modules, config, wrap, autocast) -> Callable[[torch.Tensor], dict]:
    if config.loss != "non_saturating":
        raise ValueError(f"the GAN peers mirror the non-saturating loss; got {config.loss!r}")
    generator, discriminator = modules["generator"], modules["discriminator"]
    g_params, d_params = list(generator.parameters()), list(discriminator.parameters())
    g_optimizer, d_optimizer = _adam(g_params, config.optim), _adam(d_params, config.d_optim)
    statistics = [b for name, b in generator.named_buffers() if name.endswith(("running_mean", "running_var"))]
    tracked = g_params + statistics
    averages = [t.detach().clone() for t in tracked]
    step = torch.zeros((), device=g_params[0].device)
    latent_dim = config.model.latent_dim

    @wrap(forward=True)
    def generate(z):
        with autocast():
            return generator(z).float()

    @wrap(forward=True)
    def d_loss_fn(real, fake):
        with autocast():
            logits = discriminator(torch.cat([real, fake])).float()
        real_logits, fake_logits = logits.chunk(2)
        return torch.mean(F.softplus(-real_logits) + F.softplus(fake_logits))

    @wrap(forward=True)
    def g_loss_fn(fake):
        with autocast():
            logits = discriminator(fake).float()
        return torch.mean(F.softplus(-logits))

    @wrap(forward=False)
    def d_update():
        norm = _grad_norm(d_params)
        d_optimizer.step()
        return norm

    @wrap(forward=False)
    def g_update():
        return _update_and_average(g_optimizer, g_params, averages, tracked, step, config.ema_decay)

    def train_step(images):
        real = images * 2.0 - 1.0
        fake = generate(torch.randn(real.shape[0], latent_dim, device=real.device))
        for _ in range(config.d_steps):
            d_optimizer.zero_grad(set_to_none=True)
            d_loss = d_loss_fn(real, fake.detach())
            d_loss.backward()
            d_norm = d_update()
        g_optimizer.zero_grad(set_to_none=True)
        discriminator.requires_grad_(False)
        g_loss = g_loss_fn(fake)
        g_loss.backward()
        discriminator.requires_grad_(True)
        return {"d_loss": d_loss.detach(), "g_loss": g_loss.detach(), "d_grad_norm": d_norm, "g_grad_norm": g_update()}

    return train_step


def make_runner(
    config,
    train_images: np.ndarray,
    batch_size: int,
    mode: str,
    precision: str = "f32",
    device: str = "cpu",
    seed: int = 0,
) -> Callable[[int], None]:
    """run(steps): the peer of `config`'s model trains `steps` steps on `train_images` (copied to `device` once;
    batches gathered there by a permutation per epoch), and returns when the device has finished.

    Args:
      config: the gen_jax experiment config (its model, loss, d_steps, optimizers and EMA decay are mirrored).
      train_images: f32[N, H, W, C] in [0, 1], the benchmark's synthetic training split.
      batch_size: examples per step.
      mode: "eager" or "compiled" (see the module docstring).
      precision: "f32", or "bf16" for forward passes under bfloat16 autocast.
      device: a torch device string ("cpu", "cuda").
      seed: seeds PyTorch's generator (initialisation, noise, dropout, batch order).

    Raises:
      ValueError: an unknown mode or precision, or a model without a peer.
    """
    if mode not in MODES:
        raise ValueError(f"unknown peer mode {mode!r}; choose one of {', '.join(MODES)}")
    if precision not in ("f32", "bf16"):
        raise ValueError(f"unknown precision {precision!r} for the peers; choose f32 or bf16")
    torch.manual_seed(seed)
    image_shape = tuple(train_images.shape[1:])
    modules = {name: m.to(device).train() for name, m in networks.build(config, image_shape).items()}
    images = torch.from_numpy(np.ascontiguousarray(train_images.transpose(0, 3, 1, 2))).to(device)
    device_type = images.device.type

    def wrap(forward: bool):
        if mode == "eager":
            return lambda fn: fn
        compile_mode = "reduce-overhead" if forward and device_type == "cuda" else None
        return lambda fn: torch.compile(fn, mode=compile_mode, dynamic=False)

    def autocast():
        return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16")

    make = _make_vae_step if "vae" in modules else _make_gan_step
    train_step = make(modules, config, wrap, autocast)
    per_epoch = len(images) // batch_size
    position = {"order": torch.randperm(len(images), device=device), "index": 0}

    def next_batch() -> torch.Tensor:
        if position["index"] == per_epoch:
            position.update(order=torch.randperm(len(images), device=device), index=0)
        start = position["index"] * batch_size
        position["index"] += 1
        return images[position["order"][start : start + batch_size]]

    def run(steps: int) -> None:
        for _ in range(steps):
            metrics = train_step(next_batch())
        if device_type == "cuda":
            torch.cuda.synchronize()
        else:
            torch.stack(list(metrics.values())).sum().item()

    return run

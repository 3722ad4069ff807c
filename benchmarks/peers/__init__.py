"""PyTorch peers of the networks `benchmarks.throughput` times: what a user would write in PyTorch for the same model.

`networks.py` holds the modules (the 784-500-20 VAE, the MLP GAN, the TensorFlow tutorial's DCGAN), `steps.py` one
training step of each, doing the work gen_jax's step does, eagerly or under `torch.compile`.  PyTorch is an optional
extra (`pip install -e '.[peers]'`), never a dependency of gen_jax; `throughput` imports this package only where PyTorch
is installed, and not with `--no-peers`.
"""

import os

# OpenMP threads that busy-wait lose their core to other processes on a shared machine, which slowed PyTorch's CPU
# steps several-fold (benchmarks/README.md); waiting passively is the peers' better setting there.  OpenMP reads this
# when PyTorch loads it, so it is set here, before `networks` and `steps` import torch; an explicit value is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

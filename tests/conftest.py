import os

import pytest
import torch

# Tests are about correctness, not speed: one thread keeps parallel test
# processes from fighting over the cores, and results reproducible.
torch.set_num_threads(1)
os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture
def small_space():
    from ofa.spaces import get_space

    return get_space("mbv3-small")


def randomize_batchnorm(module: torch.nn.Module, seed: int = 0) -> None:
    """Give BN layers non-trivial statistics so parity tests can see mistakes."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=generator) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                m.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                m.bias.copy_(torch.rand(n, generator=generator) * 0.4 - 0.2)

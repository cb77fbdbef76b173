"""Fake quantisation: the quantisers on hand-computed tensors, the supernet at every precision,
static extraction with parity, and the precision phase of progressive shrinking."""

import pytest
import torch

from ofa.errors import ConfigError
from ofa.models.quantization import (ActivationQuantizer, QuantizedConv2d, activation_range, fake_quantize_activation,
                                     fake_quantize_weight, quantized_convs)
from ofa.spaces import get_space
from ofa.spaces.precision import FLOAT_BITS
from ofa.supernets import create_supernet
from ofa.training.progressive_shrinking import ProgressiveShrinkingTrainer, build_phases


@pytest.fixture(scope="module")
def space():
    return get_space("mbv3-small", weight_bits=(2, 4, 8), activation_bits=(4, 8, FLOAT_BITS))


def test_weight_quantiser_on_a_hand_computed_tensor():
    weight = torch.tensor([[0.7, -0.35, 0.1, 0.0], [-2.0, 0.5, 1.2, 2.0]])
    # 4 bits: levels -7..7; channel 0 scale 0.7 / 7 = 0.1, channel 1 scale 2 / 7
    expected = torch.tensor([[0.7, -0.4, 0.1, 0.0], [-2.0, 0.5714286, 1.1428572, 2.0]])  # -3.5 rounds to even: -4
    assert torch.allclose(fake_quantize_weight(weight, 4), expected, atol=1e-6)
    # 2 bits: ternary, levels -1..1 with scale max|w|
    assert torch.equal(fake_quantize_weight(weight, 2), torch.tensor([[0.7, -0.0, 0.0, 0.0], [-2.0, 0.0, 2.0, 2.0]]))
    assert fake_quantize_weight(weight, FLOAT_BITS) is weight
    # a quantised weight is a fixed point: quantising again changes nothing
    once = fake_quantize_weight(weight, 4)
    assert torch.allclose(fake_quantize_weight(once, 4), once)


def test_activation_quantiser_on_a_hand_computed_tensor_and_its_lsq_gradients():
    assert activation_range(4, signed=False) == (0, 15) and activation_range(4, signed=True) == (8, 7)
    x = torch.tensor([[-1.0, 0.3, 0.74, 3.0, 10.0]], requires_grad=True)  # one example of 5 elements
    step = torch.tensor(0.5, requires_grad=True)
    out = fake_quantize_activation(x, step, 3, signed=False)  # levels 0..7, step 0.5: range 0..3.5
    assert torch.allclose(out, torch.tensor([[0.0, 0.5, 0.5, 3.0, 3.5]]))
    out.sum().backward()
    # straight-through inside the range, zero outside it
    assert torch.equal(x.grad, torch.tensor([[0.0, 1.0, 1.0, 1.0, 0.0]]))
    # LSQ: d out / d step = round(x/s) - x/s inside, -Qn or Qp where clamped; scaled by 1 / sqrt(N * Qp)
    inside = (1 - 0.6) + (1 - 1.48) + (6 - 6.0)
    expected = (0 + inside + 7) / (5 * 7) ** 0.5
    assert step.grad.item() == pytest.approx(expected, rel=1e-5)


def test_activation_quantiser_starts_from_lsq_initialisation():
    quantizer = ActivationQuantizer(4, signed=True)
    x = torch.tensor([[-1.0, 1.0, 2.0, -4.0]])
    quantizer(x)
    assert quantizer.step.item() == pytest.approx(2 * 2.0 / 7**0.5)
    assert bool(quantizer.initialized)


def test_supernet_runs_every_precision_and_extraction_keeps_it_exactly(space):
    torch.manual_seed(0)
    supernet = create_supernet(space)
    x = torch.randn(4, 3, 28, 28)
    for seed, (wb, ab) in enumerate([(2, 4), (4, 8), (8, FLOAT_BITS)]):
        arch = space.parse({**space.uniform_precision(space.sample(rng=seed), wb, ab).to_dict(), "resolution": 28})
        supernet.train().set_active(arch)
        supernet(x)  # initialises this precision's step sizes, updates BN statistics
        supernet.eval()
        static = supernet.extract(arch).eval()
        with torch.no_grad():
            assert torch.equal(supernet(x), static(x))
        convs = quantized_convs(static)
        assert convs and all(conv.weight_bits == wb for _, conv in convs)
        assert all((conv.input_quantizer is None) == (ab == FLOAT_BITS) for _, conv in convs)
    # fewer bits change the function; float blocks are the plain network
    arch = space.parse({**space.largest().to_dict(), "resolution": 28})
    with torch.no_grad():
        full = supernet.set_active(arch) and supernet(x)
        low = supernet.set_active(space.uniform_precision(arch, 2, 4)) and supernet(x)
    assert not torch.allclose(full, low)


def test_quantised_training_step_reaches_weights_and_step_sizes(space):
    supernet = create_supernet(space).train()
    supernet.set_active(space.smallest())
    supernet(torch.randn(2, 3, 24, 24)).square().sum().backward()
    block = supernet.stages[0][0]
    assert block.input_quantizers["expand"].by_bits["4"].step.grad is not None
    assert block.expand_conv.weight.grad.abs().sum() > 0


def test_space_without_precision_has_no_quantisers():
    supernet = create_supernet(get_space("mbv3-small"))
    assert not any("quantizer" in name for name in supernet.state_dict())
    assert not quantized_convs(supernet.extract(get_space("mbv3-small").sample(rng=0)))


def test_precision_phase_follows_the_recipe(space, tmp_path):
    phases = build_phases(space, None)
    assert phases[-1]["name"] == "precision"
    assert phases[-1]["weight_bits"] == (2, 4, 8) and phases[-1]["activation_bits"] == (4, 8, FLOAT_BITS)
    assert all(p["weight_bits"] == (8,) and p["activation_bits"] == (FLOAT_BITS,) for p in phases[:-1])
    assert "precision" not in [p["name"] for p in build_phases(get_space("mbv3-small"), None)]
    with pytest.raises(ConfigError, match="no precision decision"):
        build_phases(get_space("mbv3-small"), [{"name": "p", "weight_bits": "all"}])
    with pytest.raises(ConfigError, match="phases.0..activation_bits|phases\\[0\\].activation_bits"):
        build_phases(space, [{"name": "p", "activation_bits": [3]}])


def test_precision_phase_trains(space, tmp_path):
    config = {"space": "mbv3-small", "space_overrides": {"weight_bits": [2, 4, 8], "activation_bits": [4, 8, 32]},
              "data": {"max_train_images": 32, "calib_images": 16},
              "train": {"batch_size": 16, "threads": 1, "log_every": 1, "progress": False},
              "phases": [{"name": "teacher", "epochs": 1, "lr": 0.05, "kernel_sizes": "max", "expand_ratios": "max",
                          "depths": "max"},
                         {"name": "precision", "epochs": 1, "lr": 0.02, "subnets_per_step": 2,
                          "weight_bits": "all", "activation_bits": "all"}]}
    trainer = ProgressiveShrinkingTrainer(config, tmp_path / "run")
    result = trainer.run()
    assert [p["name"] for p in result["phases"]] == ["teacher", "precision"]
    steps = [q.step for q in trainer.model.modules() if isinstance(q, ActivationQuantizer) and bool(q.initialized)]
    assert steps  # the precision phase ran quantised subnets
    static = trainer.model.extract(space.uniform_precision(space.smallest(), 2, 4))
    assert all(isinstance(conv, QuantizedConv2d) for conv in (static.blocks[0].expand[0], static.blocks[0].project[0]))


def _initialise_on_rank(rank: int, port: int, results) -> None:
    from ofa.models.quantization import lockstep_initialization
    from ofa.training.distributed import broadcast_from_main

    torch.distributed.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        trained = ActivationQuantizer(4, signed=True)
        with lockstep_initialization():  # a training step: mean |x| 1 on rank 0, 2 on rank 1
            trained(torch.full((2, 3), float(rank + 1)))
        evaluated = ActivationQuantizer(4, signed=True)
        if rank == 0:  # an evaluation on the main process alone must not wait for the other
            evaluated(torch.full((2, 3), 3.0))
        broadcast_from_main([evaluated.step, evaluated.initialized])  # then the ranks agree again
        results[rank] = (float(trained.step), float(evaluated.step), bool(evaluated.initialized))
    finally:
        torch.distributed.destroy_process_group()


def test_data_parallel_processes_start_a_quantiser_from_the_same_step():
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    results = mp.Manager().dict()
    mp.spawn(_initialise_on_rank, args=(port, results), nprocs=2, join=True)
    _, qp = activation_range(4, signed=True)
    assert results[0] == results[1] == (pytest.approx(2 * 1.5 / qp ** 0.5), pytest.approx(2 * 3.0 / qp ** 0.5), True)

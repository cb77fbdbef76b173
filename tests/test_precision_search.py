"""Searching precision: HAQ's DDPG agent and its budget rule, evolution and NSGA-II over
architecture and bits jointly, on the same predictors (here: analytic stand-ins)."""

import numpy as np
import pytest

from hardware_profiles.bit_accelerators import latency_function
from ofa.errors import ConfigError
from ofa.search import (Constraint, HAQConfig, Objective, ParetoProblem, SearchProblem, evolution_search,
                        fixed_architecture, haq_search, nsga2_search)
from ofa.search.haq import _BitOrder, _lower_until_feasible
from ofa.spaces import get_space

TINY_AGENT = HAQConfig(episodes=6, warmup_episodes=2, hidden=16, batch_size=8)


@pytest.fixture(scope="module")
def space():
    return get_space("mbv3-small", weight_bits=(2, 4, 8), activation_bits=(4, 8))


def bits_accuracy(space):
    """A stand-in accuracy predictor: more bits and bigger subnets are more accurate."""
    layout = space.gene_layout
    weight_bits, activation_bits = np.asarray(space.weight_bits), np.asarray(space.activation_bits)

    def accuracy(genes):
        genes = np.atleast_2d(genes)
        running = genes[:, layout["weight_bits"]] >= 0
        wb = weight_bits[np.clip(genes[:, layout["weight_bits"]], 0, None)]
        ab = activation_bits[np.clip(genes[:, layout["activation_bits"]], 0, None)]
        loss = (running * (2.0 ** -wb + 2.0 ** -ab)).sum(1)
        return 60 + running.sum(1) + genes[:, layout["expand_ratios"]].clip(0, None).sum(1) * 0.1 - 10 * loss

    return accuracy


def test_budget_rule_lowers_blocks_one_after_another(space):
    arch = space.uniform_precision(space.smallest(), 8, 8)
    layout = space.gene_layout
    genes = space.to_genes(arch)[0]
    total_bits = lambda g: (np.asarray(space.weight_bits)[g[:, layout["weight_bits"]].clip(0)]  # noqa: E731
                            * (g[:, layout["weight_bits"]] >= 0)).sum(1) + (
        np.asarray(space.activation_bits)[g[:, layout["activation_bits"]].clip(0)]
        * (g[:, layout["activation_bits"]] >= 0)).sum(1)
    start = float(total_bits(genes[None])[0])
    # 8 blocks run at (8, 8); lowering block 0's weights 8->4 saves 4, its activations 8->4 another 4,
    # block 1's weights 4 more: a budget 10 below the start needs exactly those three steps
    problem = SearchProblem(space, Objective("acc", bits_accuracy(space)), [Constraint("bits", total_bits, start - 10)])
    orders = {"weight": _BitOrder(space.weight_bits), "activation": _BitOrder(space.activation_bits)}
    positions = [stage * space.max_depth + i for stage, i, _, _ in arch.active_blocks()]
    lowered, evaluations = _lower_until_feasible(problem, genes, positions, orders)
    result = space.from_genes(lowered[None])[0]
    assert result.weight_bits[positions[0]] == 4 and result.activation_bits[positions[0]] == 4
    assert result.weight_bits[positions[1]] == 4 and result.activation_bits[positions[1]] == 8
    assert all(result.weight_bits[p] == 8 for p in positions[2:])
    assert evaluations == 1 + 3


def test_haq_agent_finds_bits_within_the_budget(space):
    arch = space.sample(rng=2)
    latency = latency_function(space, "bismo-pynq-z1")
    eight_bit = latency(space.to_genes(space.uniform_precision(arch, 8, 8)))[0]
    problem = SearchProblem(space, Objective("top1", bits_accuracy(space)),
                            [Constraint("latency_ms@bismo", latency, 0.8 * eight_bit, "ms")])
    result = haq_search(problem, arch, TINY_AGENT, seed=0)
    assert result.feasible and result.method == "haq"
    assert result.constraints["latency_ms@bismo"] <= 0.8 * eight_bit
    found = result.arch
    assert (found.kernel_sizes, found.expand_ratios, found.depths, found.resolution) == (
        arch.kernel_sizes, arch.expand_ratios, arch.depths, arch.resolution)
    again = haq_search(problem, arch, TINY_AGENT, seed=0)
    assert np.array_equal(again.genes, result.genes)  # deterministic for a seed
    # evolution on the same task: the bits of the same architecture
    evolved = evolution_search(fixed_architecture(problem, arch), population_size=8, generations=3, seed=0)
    assert evolved.feasible


def test_haq_refuses_a_space_without_precision():
    plain = get_space("mbv3-small")
    problem = SearchProblem(plain, Objective("x", lambda g: np.zeros(len(g))))
    with pytest.raises(ConfigError, match="no precision decision"):
        haq_search(problem, plain.sample(rng=0), TINY_AGENT)


def test_evolution_and_nsga2_search_architecture_and_bits_jointly(space):
    latency = latency_function(space, "bitfusion-45nm")
    largest = space.uniform_precision(space.largest(), 8, 8)
    budget = 0.5 * latency(space.to_genes(largest))[0]
    problem = SearchProblem(space, Objective("top1", bits_accuracy(space)), [Constraint("lat", latency, budget)])
    result = evolution_search(problem, population_size=12, generations=4, seed=0)
    assert result.feasible and result.constraints["lat"] <= budget
    assert result.arch.weight_bits != largest.weight_bits  # the bits moved with the architecture
    front = nsga2_search(ParetoProblem(space, [Objective("top1", bits_accuracy(space)),
                                               Objective("lat", latency, maximize=False)]),
                         population_size=12, generations=3, seed=0)
    bits = {b for arch in front.archs() for b in arch.weight_bits if b is not None}
    assert len(bits) > 1

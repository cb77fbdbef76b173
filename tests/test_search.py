"""Specialisation search: budgets respected, infeasible budgets end with a
named error, determinism per seed, and the exhaustive optimum is found."""

import numpy as np
import pytest

from ofa.errors import ConfigError, SearchError
from ofa.search import (Constraint, Objective, ParetoProblem, SearchProblem, SyntheticObjectives, cost_function,
                        enumerate_genes, evolution_search, exhaustive_search, hypervolume, nsga2_search,
                        pareto_mask, random_front, random_search)
from ofa.spaces import get_space


@pytest.fixture(scope="module")
def ofa_space():
    return get_space("ofa-mbv3-w1.0")


@pytest.fixture(scope="module")
def small_space():
    """A reduced mbv3-small: 3888 architectures, enumerable in a blink."""
    return get_space("mbv3-small", kernel_sizes=(3, 5), expand_ratios=(4,), depths=(1, 2))


def two_device_problem(space, budgets=(0.5, 0.3), seed=0, with_macs=False):
    """Accuracy under a budget per device at the given quantiles of random subnets' latency."""
    synthetic = SyntheticObjectives(space, num_devices=2, seed=seed)
    sample = space.sample_genes(2000, np.random.default_rng(123))
    constraints = []
    for device, quantile in enumerate(budgets):
        fn = (lambda g, d=device: synthetic.latency(g, d))
        constraints.append(Constraint(f"latency_ms@device{device}", fn, float(np.quantile(fn(sample), quantile)),
                                      "ms"))
    if with_macs:
        macs = cost_function(space, "macs")
        constraints.append(Constraint("macs", macs, float(np.quantile(macs(sample), 0.5))))
    return SearchProblem(space, Objective("top1", synthetic.accuracy), constraints)


def test_cost_function_matches_cost_model(small_space):
    genes = small_space.sample_genes(64, np.random.default_rng(1))
    archs = small_space.from_genes(genes)
    for metric in ("macs", "params"):
        expected = [getattr(small_space.cost(a), metric) for a in archs]
        np.testing.assert_array_equal(cost_function(small_space, metric)(genes), expected)
    with pytest.raises(ConfigError, match="allowed"):
        cost_function(small_space, "flops")


def test_evolution_respects_every_budget(ofa_space):
    problem = two_device_problem(ofa_space, with_macs=True)
    result = evolution_search(problem, population_size=40, generations=30, seed=0)
    assert result.feasible
    for constraint in problem.constraints:
        value = constraint.fn(result.genes[None, :])[0]
        assert value <= constraint.limit
        assert result.constraints[constraint.name] == pytest.approx(value)
    # the search improves on its first population and beats the best of the same number of random draws
    assert result.history[-1] >= result.history[0]
    baseline = random_search(problem, num_samples=result.num_evaluations, seed=0)
    assert result.objective >= baseline.objective


def test_evolution_is_deterministic_per_seed(ofa_space):
    problem = two_device_problem(ofa_space)
    a = evolution_search(problem, population_size=30, generations=20, seed=3)
    b = evolution_search(problem, population_size=30, generations=20, seed=3)
    c = evolution_search(problem, population_size=30, generations=20, seed=4)
    assert np.array_equal(a.genes, b.genes) and a.history == b.history
    assert a.arch == b.arch
    assert c.num_evaluations > 0  # another seed runs its own course


def test_infeasible_budget_raises_quoting_the_smallest_subnet(ofa_space):
    synthetic = SyntheticObjectives(ofa_space)
    smallest = float(synthetic.latency(ofa_space.to_genes(ofa_space.smallest()))[0])
    problem = SearchProblem(ofa_space, Objective("top1", synthetic.accuracy),
                            [Constraint("latency_ms@cpu", synthetic.latency, smallest / 2, "ms")])
    with pytest.raises(SearchError, match="smallest subnet has latency_ms@cpu = "):
        evolution_search(problem, population_size=20, generations=5, seed=0)
    with pytest.raises(SearchError, match="smallest subnet"):
        random_search(problem, num_samples=500, seed=0)
    nearest = evolution_search(problem, population_size=20, generations=5, seed=0, on_infeasible="nearest")
    assert not nearest.feasible
    assert nearest.constraints["latency_ms@cpu"] == pytest.approx(smallest, rel=0.05)


def test_enumeration_lists_every_architecture_once(small_space):
    genes = enumerate_genes(small_space)
    assert len(genes) == small_space.size() == 3888
    assert len(np.unique(genes, axis=0)) == len(genes)
    np.testing.assert_array_equal(small_space.normalize_genes(genes), genes)
    with pytest.raises(ConfigError, match="evolution_search"):
        enumerate_genes(get_space("ofa-mbv3-w1.0"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_evolution_finds_the_exhaustive_optimum(small_space, seed):
    problem = two_device_problem(small_space, budgets=(0.4, 0.4), seed=seed)
    truth = exhaustive_search(problem)
    found = evolution_search(problem, population_size=50, generations=40, seed=seed)
    assert truth.feasible and found.feasible
    assert found.objective == pytest.approx(truth.objective)
    assert found.arch == truth.arch


def test_nsga2_front_is_feasible_non_dominated_and_deterministic(ofa_space):
    synthetic = SyntheticObjectives(ofa_space, num_devices=2)
    budget = float(np.median(synthetic.latency(ofa_space.sample_genes(1000, np.random.default_rng(0)), 1)))
    problem = ParetoProblem(
        ofa_space,
        [Objective("top1", synthetic.accuracy), Objective("latency_ms@device0", synthetic.latency, maximize=False)],
        [Constraint("latency_ms@device1", lambda g: synthetic.latency(g, 1), budget, "ms")])
    front = nsga2_search(problem, population_size=40, generations=25, seed=0)
    again = nsga2_search(problem, population_size=40, generations=25, seed=0)
    np.testing.assert_array_equal(front.genes, again.genes)
    assert len(front) > 3
    assert np.all(synthetic.latency(front.genes, 1) <= budget)
    assert pareto_mask(front.minimization_form()).all()
    np.testing.assert_allclose(front.values[:, 0], synthetic.accuracy(front.genes), rtol=1e-6)
    # NSGA-II dominates more than random search with the same number of evaluations
    baseline = random_front(problem, num_samples=front.num_evaluations, seed=0)
    reference = np.array([0.0, float(synthetic.latency(ofa_space.to_genes(ofa_space.largest()))[0])])
    assert hypervolume(front.minimization_form(), reference) > hypervolume(baseline.minimization_form(), reference)
    records = front.to_records()
    assert set(records[0]) == {"arch", "top1", "latency_ms@device0"}


def test_pareto_mask_and_hypervolume_against_brute_force():
    rng = np.random.default_rng(0)
    F = rng.random((300, 2))
    F = np.vstack([F, F[:5]])  # duplicates keep one copy
    dominated = [any(np.all(F[j] <= F[i]) and np.any(F[j] < F[i]) for j in range(len(F))) for i in range(len(F))]
    mask = pareto_mask(F)
    assert mask.sum() == len({tuple(r) for r in F[~np.array(dominated)]})
    assert not np.any(mask & np.array(dominated))
    assert hypervolume(np.array([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5]]), np.array([2.0, 2.0])) == pytest.approx(3.25)
    pymoo_hv = pytest.importorskip("pymoo.indicators.hv").HV(ref_point=np.array([1.1, 1.1]))(F[mask])
    assert hypervolume(F, np.array([1.1, 1.1])) == pytest.approx(pymoo_hv)
    F3 = rng.random((50, 3))
    assert hypervolume(F3, np.ones(3) * 1.1) > 0


def test_bad_inputs_are_named_errors(ofa_space):
    with pytest.raises(ConfigError, match="positive"):
        Constraint("latency", lambda g: g[:, 0], -1.0)
    wrong_length = SearchProblem(ofa_space, Objective("top1", lambda g: np.zeros(3)))
    with pytest.raises(ConfigError, match="returned 3 values"):
        evolution_search(wrong_length, population_size=10, generations=1)
    nan = SearchProblem(ofa_space, Objective("top1", lambda g: np.full(len(g), np.nan)))
    with pytest.raises(SearchError, match="non-finite"):
        random_search(nan, num_samples=10)
    with pytest.raises(ConfigError, match="population_size"):
        evolution_search(nan, population_size=2)


def test_bort_space_exhaustive_optimum_with_a_loss_objective_and_a_params_budget():
    """Bort's 300 architectures (a space with a constraint between genes:
    heads divide the width): evolution minimising a loss under a parameter
    budget finds the enumerated optimum."""
    space = get_space("bort")
    genes = enumerate_genes(space)
    assert len(genes) == 300 == len({a.to_json() for a in space.from_genes(genes)})
    synthetic = SyntheticObjectives(space, seed=1)
    params = cost_function(space, "params")
    problem = SearchProblem(space, Objective("loss", lambda g: 3.0 - synthetic.accuracy(g), maximize=False),
                            [Constraint("params", params, float(np.median(params(genes))))])
    truth = exhaustive_search(problem)
    found = evolution_search(problem, population_size=30, generations=30, seed=0)
    assert found.objective == pytest.approx(truth.objective) and found.arch == truth.arch
    assert found.constraints["params"] <= problem.constraints[0].limit


def test_search_terminates_on_a_space_with_a_single_architecture():
    space = get_space("mbv3-small", kernel_sizes=(3,), expand_ratios=(4,), depths=(1,), resolutions=(24,))
    problem = SearchProblem(space, Objective("top1", SyntheticObjectives(space).accuracy))
    result = evolution_search(problem, population_size=10, generations=5, seed=0)
    assert result.feasible and result.arch == space.smallest() == space.largest()


def test_evolution_reaches_a_costly_gene_value_under_a_tight_budget():
    """Accuracy that grows with resolution, a MACs budget that allows the highest resolution
    only with the smallest blocks: few random subnets fit, and every seed must still find it
    (the first population holds the smallest subnet at each resolution)."""
    space = get_space("mbv3-small")
    macs = cost_function(space, "macs")
    highest = space.parse({**space.smallest().to_dict(), "resolution": max(space.resolutions)})
    budget = float(macs(space.to_genes(highest))[0]) * 1.02
    layout = space.gene_layout

    def accuracy(genes):  # resolution first, block sizes a little
        return 10.0 * genes[:, layout["resolution"]].sum(axis=1) + 0.01 * np.clip(genes, 0, None).sum(axis=1)

    problem = SearchProblem(space, Objective("top1", accuracy), [Constraint("macs", macs, budget)])
    for seed in range(4):
        result = evolution_search(problem, population_size=20, generations=10, seed=seed)
        assert result.feasible and result.arch.resolution == max(space.resolutions), seed

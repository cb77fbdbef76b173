"""Search spaces and architecture values: validation, round trips, sampling,
size, encoding, and the analytic cost model."""

import itertools
import json

import numpy as np
import pytest
import yaml

from ofa import ConfigError, SpaceMismatchError, get_space, list_spaces, space_from_dict
from ofa.spaces import MobileNetV3Space, resolve_space


def test_presets_listed():
    assert {"ofa-mbv3-w1.0", "ofa-mbv3-w1.2", "mbv3-small"} <= set(list_spaces())


def test_ofa_space_size_matches_paper():
    space = get_space("ofa-mbv3-w1.0")
    assert space.size(per_resolution=True) == 7371**5
    assert f"{float(7371**5):.3g}" == "2.18e+19"
    assert space.size() == 7371**5 * len(space.resolutions) == 7371**5 * 25


def test_size_equals_enumeration_on_tiny_space():
    space = MobileNetV3Space(kernel_sizes=(3, 5), expand_ratios=(3, 6), depths=(1, 2), resolutions=(32, 40),
                             stage_widths=(8, 16), stage_strides=(2, 2), stage_activations=("relu", "h_swish"),
                             stage_use_se=(False, True), num_classes=4)
    all_genes = np.array(list(itertools.product(*[range(len(c)) for c in space.gene_choices])))
    distinct = {space.from_genes(row)[0] for row in all_genes}
    assert len(distinct) == space.size() == (4 + 16) ** 2 * 2


def test_space_round_trip_json_yaml_and_fingerprint(tmp_path):
    space = get_space("mbv3-small")
    again = space_from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space and again.fingerprint == space.fingerprint
    path = tmp_path / "space.yaml"
    path.write_text(yaml.safe_dump(space.to_dict()))
    assert resolve_space(str(path)).fingerprint == space.fingerprint
    other = space.replace(num_classes=7)
    assert other.fingerprint != space.fingerprint
    assert get_space("ofa-mbv3-w1.0").fingerprint != get_space("ofa-mbv3-w1.2").fingerprint


def test_arch_round_trip_and_hash(small_space):
    for arch in small_space.sample(rng=0, n=20):
        again = small_space.parse(json.loads(arch.to_json()))
        assert again == arch and hash(again) == hash(arch)
        assert small_space.from_genes(small_space.to_genes(arch))[0] == arch


def test_skipped_blocks_are_normalised(small_space):
    b = small_space.num_blocks
    base = {"kernel_sizes": [3] * b, "expand_ratios": [4] * b, "depths": [2] * small_space.num_stages,
            "resolution": 32}
    variant = dict(base, kernel_sizes=[7 if i % 4 >= 2 else 3 for i in range(b)])  # differs only where skipped
    a, c = small_space.parse(base), small_space.parse(variant)
    assert a == c and hash(a) == hash(c) and a.to_json() == c.to_json()
    assert a.kernel_sizes[2] is None and a.expand_ratios[3] is None
    assert small_space.parse(dict(base, kernel_sizes=[None if i % 4 >= 2 else 3 for i in range(b)])) == a


def test_sampling_mutation_crossover_stay_in_space(small_space):
    rng = np.random.default_rng(0)
    genes = small_space.sample_genes(200, rng)
    mutated = small_space.mutate_genes(genes, rng, prob=0.5)
    children = small_space.crossover_genes(genes, mutated[::-1], rng)
    for batch in (genes, mutated, children):
        assert np.array_equal(small_space.normalize_genes(batch), batch)
        for arch in small_space.from_genes(batch):
            assert small_space.parse(arch.to_dict()) == arch
    a, c = small_space.sample(rng=1), small_space.sample(rng=2)
    assert small_space.parse(small_space.mutate(a, rng=3, prob=1.0).to_dict())
    child = small_space.crossover(a, c, rng=4)
    for stage, depth in enumerate(child.depths):
        assert depth in (a.depths[stage], c.depths[stage])


def test_sampling_is_deterministic_per_seed(small_space):
    assert np.array_equal(small_space.sample_genes(50, 7), small_space.sample_genes(50, 7))
    assert not np.array_equal(small_space.sample_genes(50, 7), small_space.sample_genes(50, 8))


def test_uniform_distribution_weights_depths_by_network_count(small_space):
    genes = small_space.sample_genes(20000, 0, distribution="uniform")
    b = small_space.num_blocks
    depths = np.asarray(small_space.depths)[genes[:, 2 * b:2 * b + small_space.num_stages]]
    weights = np.array([9.0**d for d in small_space.depths])
    expected = weights / weights.sum()
    observed = np.array([(depths == d).mean() for d in small_space.depths])
    assert np.allclose(observed, expected, atol=0.01)
    independent = small_space.sample_genes(20000, 0)
    observed = np.array([(np.asarray(small_space.depths)[independent[:, 2 * b:2 * b + 4]] == d).mean()
                         for d in small_space.depths])
    assert np.allclose(observed, 1 / 3, atol=0.01)
    with pytest.raises(ConfigError, match="distribution"):
        small_space.sample_genes(1, 0, distribution="gaussian")


def test_smallest_and_largest(small_space):
    small, large = small_space.smallest(), small_space.largest()
    assert set(small.depths) == {2} and small.resolution == 24
    assert set(large.depths) == {4} and large.resolution == 32
    assert small_space.cost(small).macs < small_space.cost(large).macs


def test_encoding_fixed_length_with_zeros_for_skipped(small_space):
    archs = [small_space.smallest(), small_space.largest()] + small_space.sample(rng=0, n=5)
    x = small_space.encode(archs)
    assert x.shape == (7, small_space.encoding_size) and x.dtype == np.float32
    assert set(np.unique(x)) <= {0.0, 1.0}
    # smallest: per stage 2 of 4 blocks active -> half of the kernel/expand one-hots are zero
    active_rows = x[0, :2 * 3 * small_space.num_blocks].sum()
    assert active_rows == 2 * small_space.num_stages * 2
    assert x[1].sum() == small_space.num_genes  # largest: every gene active


@pytest.mark.parametrize("change, match", [
    ({"kernel_sizes": 4}, r"kernel_sizes\[0\] = 4 is not allowed; allowed values: \(3, 5, 7\)"),
    ({"expand_ratios": 5}, r"expand_ratios\[0\] = 5 is not allowed"),
    ({"depths": 5}, r"depths\[0\] = 5 is not allowed; allowed values: \(2, 3, 4\)"),
    ({"resolution": 100}, r"resolution = 100 is not allowed; allowed values: \(24, 28, 32\)"),
    ({"resolution": True}, r"resolution = True is not allowed"),
])
def test_bad_values_raise_config_error(small_space, change, match):
    config = small_space.largest().to_dict()
    key, value = next(iter(change.items()))
    config[key] = value if key == "resolution" else [value] + config[key][1:]
    with pytest.raises(ConfigError, match=match):
        small_space.parse(config)


def test_bad_structure_raises_config_error(small_space):
    good = small_space.largest().to_dict()
    with pytest.raises(ConfigError, match="kernel_sizes has 15 entries; this space needs 16"):
        small_space.parse(dict(good, kernel_sizes=good["kernel_sizes"][:-1]))
    with pytest.raises(ConfigError, match=r"depths has 5 entries"):
        small_space.parse(dict(good, depths=[4] * 5))
    with pytest.raises(ConfigError, match=r"unknown key\(s\) \['width'\]"):
        small_space.parse(dict(good, width=1.0))
    with pytest.raises(ConfigError, match=r"missing key\(s\) \['resolution'\]"):
        small_space.parse({k: v for k, v in good.items() if k != "resolution"})
    with pytest.raises(ConfigError, match="must be a JSON object"):
        small_space.parse([1, 2, 3])
    with pytest.raises(ConfigError, match="runs at depth"):
        small_space.parse(dict(good, kernel_sizes=[None] + good["kernel_sizes"][1:]))


def test_config_from_another_space_is_refused(small_space):
    other = get_space("ofa-mbv3-w1.0")
    with pytest.raises(SpaceMismatchError, match="fingerprint"):
        small_space.parse(other.largest())
    with pytest.raises(SpaceMismatchError):
        small_space.parse(dict(small_space.largest().to_dict(), space=other.fingerprint))
    # a hand-written config of another space fails on its shape, with the same error family
    with pytest.raises(ConfigError):
        small_space.parse({k: v for k, v in other.largest().to_dict().items() if k != "space"})


def test_bad_space_definitions():
    with pytest.raises(ConfigError, match="unknown search space preset"):
        get_space("resnet-9000")
    with pytest.raises(ConfigError, match="kernel_sizes must be odd"):
        MobileNetV3Space(kernel_sizes=(3, 4))
    with pytest.raises(ConfigError, match="stage_strides has 4 entries; stage_widths has 5"):
        MobileNetV3Space(stage_strides=(2, 2, 2, 1))
    with pytest.raises(ConfigError, match="unknown field"):
        space_from_dict({"type": "mobilenetv3", "channels": 3})
    with pytest.raises(ConfigError, match="unknown search space type"):
        space_from_dict({"type": "vit"})
    with pytest.raises(ConfigError, match="gene rows have"):
        get_space("mbv3-small").from_genes(np.zeros((1, 3), dtype=int))


def test_cost_report_layers(small_space):
    arch = small_space.largest()
    cost = small_space.cost(arch)
    assert cost.macs == sum(layer.macs for layer in cost.layers)
    ops = {layer.op for layer in cost.layers}
    assert ops == {"conv", "depthwise", "pointwise", "linear"}
    depthwise = [layer for layer in cost.layers if layer.op == "depthwise" and layer.name.startswith("stages")]
    assert len(depthwise) == sum(arch.depths) and all(layer.kernel_size == 7 for layer in depthwise)
    assert all(layer.groups == layer.in_channels for layer in depthwise)
    assert cost.layers[0].in_size == (32, 32) and cost.layers[0].out_size == (16, 16)
    json.dumps(cost.to_dict())

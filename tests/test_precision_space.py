"""Precision as a decision of the MobileNetV3 space: genes, validation, fingerprint, blocks."""

import numpy as np
import pytest

from ofa.errors import ConfigError
from ofa.spaces import block_from_dict, block_from_key, get_space, space_from_dict
from ofa.spaces.columns import gene_column_names
from ofa.spaces.precision import FLOAT_BITS


@pytest.fixture(scope="module")
def space():
    return get_space("mbv3-small", weight_bits=(2, 4, 8), activation_bits=(4, 8, FLOAT_BITS))


def test_fingerprints_differ_between_spaces_with_and_without_precision(space):
    plain = get_space("mbv3-small")
    assert space.fingerprint != plain.fingerprint
    assert get_space("mbv3-small", weight_bits=(2, 4), activation_bits=(8,)).fingerprint != space.fingerprint
    assert "weight_bits" not in plain.to_dict()  # a space without precision reads as it always did
    assert space_from_dict(space.to_dict()) == space
    assert space_from_dict(plain.to_dict()).fingerprint == plain.fingerprint


def test_space_without_precision_keeps_its_genes_arch_dict_and_block_keys():
    plain = get_space("mbv3-small")
    arch = plain.sample(rng=0)
    assert plain.num_genes == 2 * 16 + 4 + 1
    assert "weight_bits" not in arch.to_dict()
    assert all("bits" not in block.key for block in plain.distinct_blocks())
    assert all("weight_bits" not in layer.to_dict() for layer in plain.cost(arch).layers)


def test_precision_genes_round_trip(space):
    genes = space.sample_genes(200, rng=3)
    layout = space.gene_layout
    assert space.num_genes == 2 * 16 + 4 + 1 + 2 * 16
    archs = space.from_genes(genes)
    assert np.array_equal(space.to_genes(archs), genes)
    for arch, row in zip(archs, genes):
        wb = row[layout["weight_bits"]]
        assert [None if g < 0 else space.weight_bits[g] for g in wb] == list(arch.weight_bits)
        # precision genes run exactly where kernel genes run
        assert np.array_equal(wb >= 0, row[layout["kernel_sizes"]] >= 0)
    mutated = space.mutate_genes(genes, rng=0, prob=0.5)
    assert np.array_equal(space.to_genes(space.from_genes(mutated)), mutated)
    assert len(gene_column_names(space)) == space.num_genes
    assert space.size() == (sum((9 * 9) ** d for d in space.depths) ** 4) * 3


def test_arch_validation_names_the_precision_field(space):
    config = space.largest().to_dict()
    config["weight_bits"][0] = 3
    with pytest.raises(ConfigError, match=r"weight_bits\[0\] = 3 is not allowed"):
        space.parse(config)
    config = space.largest().to_dict()
    del config["activation_bits"]
    with pytest.raises(ConfigError, match="missing key"):
        space.parse(config)
    with pytest.raises(ConfigError, match="unknown key"):
        get_space("mbv3-small").parse(config)
    with pytest.raises(ConfigError, match="give both"):
        get_space("mbv3-small", weight_bits=(4, 8))
    with pytest.raises(ConfigError, match="distinct bit-widths"):
        get_space("mbv3-small", weight_bits=(1, 8), activation_bits=(8,))
    assert space.smallest().weight_bits[0] == 2 and space.largest().activation_bits[0] == FLOAT_BITS


def test_blocks_carry_precision_in_their_keys_and_layers(space):
    arch = space.uniform_precision(space.sample(rng=1), 4, 8)
    blocks = dict(space.blocks(arch))
    block = blocks["stages.0.0"]
    assert block.key.endswith(":weight_bits=4:activation_bits=8")
    assert block_from_key(block.key) == block and block_from_dict(block.to_dict()) == block
    layers = {layer.name.rsplit(".", 1)[-1]: layer for layer in block.layers()}
    assert (layers["project"].weight_bits, layers["project"].activation_bits) == (4, 8)
    assert "bits" not in blocks["stem"].key and "bits" not in blocks["head"].key  # static blocks stay float
    # float blocks of a precision space are the blocks of the plain space
    float_arch = space.uniform_precision(arch, 8, FLOAT_BITS)
    assert "activation_bits" not in dict(space.blocks(float_arch))["stages.0.0"].key
    assert block.key in {b.key for b in space.distinct_blocks(resolutions=[arch.resolution])}


def test_cost_table_matches_cost_with_precision(space):
    from ofa.search import cost_function

    genes = space.sample_genes(20, rng=5)
    macs = cost_function(space, "macs")(genes)
    assert np.allclose(macs, [space.cost(a).macs for a in space.from_genes(genes)])

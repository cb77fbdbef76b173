"""QDQ ONNX export of fake-quantised subnets, checked against PyTorch; ncnn and TensorRT refuse
precisions they cannot express."""

import numpy as np
import onnx
import pytest
import torch

from ofa.errors import UnsupportedPrecisionError
from ofa.export import PARITY_TOLERANCE, build_tensorrt_engine, check_runtime_precision, convert_onnx_to_ncnn, \
    export_checked, onnxruntime_session
from ofa.spaces import get_space
from ofa.spaces.precision import FLOAT_BITS
from ofa.supernets import create_supernet


@pytest.fixture(scope="module")
def quantized_subnets():
    space = get_space("mbv3-small", weight_bits=(2, 4, 8), activation_bits=(2, 4, 8, FLOAT_BITS))
    torch.manual_seed(0)
    supernet = create_supernet(space)
    out = {}
    for wb, ab in [(8, 8), (4, 2), (2, FLOAT_BITS)]:
        arch = space.uniform_precision(space.sample(rng=wb * ab), wb, ab)
        supernet.train().set_active(arch)
        supernet(3 * torch.randn(16, 3, arch.resolution, arch.resolution))  # step sizes and BN statistics
        out[(wb, ab)] = supernet.extract(arch).eval()
    return out


@pytest.mark.parametrize("bits", [(8, 8), (4, 2), (2, FLOAT_BITS)])
def test_qdq_export_matches_the_fake_quantised_subnet(quantized_subnets, bits, tmp_path):
    static = quantized_subnets[bits]
    report = export_checked(static, tmp_path / "model.onnx")  # raises beyond PARITY_TOLERANCE x max(1, |out|)
    assert report["parity_max_abs_diff"] <= PARITY_TOLERANCE * report["output_max_abs"]
    ops = [node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    quantized_layers = 3 * len(static.blocks) - sum(block.expand is None for block in static.blocks)
    weight_pairs = quantized_layers
    activation_pairs = 0 if bits[1] == FLOAT_BITS else quantized_layers
    # the weights are stored quantised (int8 initialisers behind DequantizeLinear): no QuantizeLinear of their own
    assert ops.count("DequantizeLinear") == weight_pairs + activation_pairs
    assert ops.count("QuantizeLinear") == activation_pairs
    graph = onnx.load(str(tmp_path / "model.onnx")).graph
    initializers = {t.name: t for t in graph.initializer}
    weights = [initializers[n.input[0]] for n in graph.node if n.op_type == "DequantizeLinear"
               and n.input[0] in initializers]
    assert len(weights) == weight_pairs and all(t.data_type == onnx.TensorProto.INT8 for t in weights)
    limit = 2 ** (bits[0] - 1)  # a b-bit weight uses b bits of the int8 range
    assert all(np.abs(onnx.numpy_helper.to_array(t).astype(int)).max() <= limit for t in weights)
    # below 8 bits the activation range is a Clip before the int8 pair; at 8 bits the int8 range is the range
    assert ops.count("Clip") == (activation_pairs if bits[1] < 8 else 0)
    # the runtime's outputs on larger inputs still match
    x = 3 * torch.randn(4, 3, static.arch.resolution, static.arch.resolution)
    with torch.no_grad():
        expected = static(x).numpy()
    got = onnxruntime_session(tmp_path / "model.onnx").run(None, {"input": x.numpy()})[0]
    assert np.max(np.abs(got - expected)) <= PARITY_TOLERANCE * max(1.0, float(np.abs(expected).max()))


def test_ncnn_and_tensorrt_refuse_what_they_cannot_express(quantized_subnets, tmp_path):
    static = quantized_subnets[(4, 2)]
    export_checked(static, tmp_path / "model.onnx")
    with pytest.raises(UnsupportedPrecisionError, match="ncnn runs floating point only"):
        convert_onnx_to_ncnn(tmp_path / "model.onnx", [np.zeros((1, 3, 24, 24), np.float32)], tmp_path / "ncnn")
    with pytest.raises(UnsupportedPrecisionError, match="weight_bits = 4 is not allowed on tensorrt"):
        build_tensorrt_engine(static)
    check_runtime_precision(quantized_subnets[(8, 8)], "tensorrt")  # 8-bit Q/DQ: TensorRT runs it
    with pytest.raises(UnsupportedPrecisionError, match="on ncnn"):
        check_runtime_precision(quantized_subnets[(8, 8)], "ncnn")


def test_weight_quantization_folded_by_hand(tmp_path):
    """QuantizeLinear of a constant weight becomes the integers it computes: per output channel,
    round half to even, add the zero point, saturate; the runtime's output is unchanged."""
    from onnx import TensorProto, helper, numpy_helper

    from ofa.export import fold_weight_quantization

    weight = np.array([[0.25, -0.75, 1.0], [0.5, 2.5, -9.0]], dtype=np.float32)  # 2 output channels
    scale = np.array([0.5, 1.0], dtype=np.float32)
    zero_point = np.array([0, 0], dtype=np.int8)
    nodes = [helper.make_node("QuantizeLinear", ["w", "s", "z"], ["wq"], axis=0),
             helper.make_node("DequantizeLinear", ["wq", "s", "z"], ["wd"], axis=0),
             helper.make_node("MatMul", ["x", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
                              [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(scale, "s"),
                               numpy_helper.from_array(zero_point, "z")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    folded = onnx.load_from_string(fold_weight_quantization(model.SerializeToString()))
    assert [n.op_type for n in folded.graph.node] == ["DequantizeLinear", "MatMul"]
    stored = {t.name: numpy_helper.to_array(t) for t in folded.graph.initializer}
    assert "w" not in stored  # the float weight is gone
    # channel 0 / 0.5: 0.5 -> 0 (half to even), -1.5 -> -2, 2; channel 1 / 1: 0.5 -> 0, 2.5 -> 2, -9
    assert stored["wq"].dtype == np.int8 and stored["wq"].tolist() == [[0, -2, 2], [0, 2, -9]]
    x = np.array([[1.0, -2.0]], dtype=np.float32)
    paths = {}
    for name, proto in [("raw", model), ("folded", folded)]:
        paths[name] = tmp_path / f"{name}.onnx"
        paths[name].write_bytes(proto.SerializeToString())
    outputs = [onnxruntime_session(paths[name]).run(None, {"x": x})[0] for name in ("raw", "folded")]
    assert np.array_equal(outputs[0], outputs[1])

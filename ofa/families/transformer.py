"""The text family: elastic encoder-decoder and encoder-only Transformers."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ConfigError
from ..spaces.transformer import TransformerArch
from . import ModelFamily, register_family


class TransformerFamily(ModelFamily):
    name = "transformer"
    arch_type = TransformerArch
    accuracy_target = "loss"
    accuracy_kind = "token accuracy"

    def checkpoint_data(self, checkpoint, source=None):
        """The text splits, rebuilt from the stored config and checked against the stored vocabularies."""
        if source is not None:
            raise ConfigError("--data applies to image supernets; a Transformer checkpoint rebuilds its own "
                              "text data")
        from ..training.transformer import load_trained

        return load_trained(checkpoint)[1]

    def is_data(self, data) -> bool:
        return hasattr(data, "src_vocab") and hasattr(data, "batches")

    def evaluator(self, supernet, data, split="val", calib_images=2000, limit=200, batch_size=256):
        # no BatchNorm: nothing is re-calibrated, so calib_images and batch_size do not apply
        from ..evaluation import evaluate_subnet

        teacher = supernet.extract(supernet.space.largest())

        def evaluate(arch) -> dict:
            r = evaluate_subnet(supernet.extract(arch), data, split, limit=limit, decode=False, teacher=teacher)
            return {"accuracy": r["token_accuracy"], "kind": self.accuracy_kind, "loss": r["val_loss"],
                    "label_loyalty": r["label_loyalty"] / 100.0,
                    "probability_loyalty": r["probability_loyalty"] / 100.0}
        return evaluate

    def write_onnx(self, static, path, opset):
        """Encoder-decoder: ``path`` (teacher-forced forward) plus ``<stem>.encoder.onnx`` and
        ``<stem>.decoder_step.onnx`` for incremental decoding with a key/value cache."""
        from ..export import export_model, export_transformer

        if not static.arch.has_decoder:
            export_model(static, path, opset=opset)
            return {}
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        extra = {}
        with tempfile.TemporaryDirectory(dir=path.parent) as scratch:
            for name, source in export_transformer(static, scratch, opset).items():
                target = path if name == "model" else path.with_name(f"{path.stem}.{name}.onnx")
                os.replace(source, target)  # same filesystem: atomic
                if name != "model":
                    extra[f"onnx_{name}"] = str(target)
        return extra

    def ncnn_graph(self, static):
        """The unpadded graph (the same function on one unpadded sentence): padding and causal masks
        would need boolean/select operators ncnn does not have."""
        return static.unpadded()


register_family(TransformerFamily())

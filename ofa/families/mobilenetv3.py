"""The image family: elastic MobileNetV3 supernets on image classification data."""

from __future__ import annotations

from ..errors import ConfigError
from ..spaces.mobilenetv3 import MobileNetV3Arch
from . import ModelFamily, register_family


class MobileNetV3Family(ModelFamily):
    name = "mobilenetv3"
    arch_type = MobileNetV3Arch
    accuracy_target = "top1"
    accuracy_kind = "top-1"
    can_finetune = True
    can_search_relaxed = True

    def checkpoint_data(self, checkpoint, source=None):
        """Image splits at the space's largest resolution, with the split fractions the run used."""
        from ..data import build_datasets
        from ..training.checkpoint import checkpoint_space, load_checkpoint
        from ..training.progressive_shrinking import DEFAULT_CONFIG

        payload = load_checkpoint(checkpoint)
        space = checkpoint_space(payload)
        data = {**DEFAULT_CONFIG["data"], **payload["config"].get("data", {})}
        if source is None and "dataset" not in payload["config"].get("data", {}):
            raise ConfigError(f"checkpoint {checkpoint} records no data set; pass --data (digits, a CIFAR "
                              f"directory or an image folder)")
        return build_datasets(source if source is not None else data["dataset"], max(space.resolutions),
                              space.in_channels, "none", data["val_fraction"], data["test_fraction"],
                              preprocessing=data.get("preprocessing", "resize"))

    def is_data(self, data) -> bool:
        from ..data import DataSplits

        return isinstance(data, DataSplits)

    def evaluator(self, supernet, data, split="val", calib_images=2000, limit=200, batch_size=256):
        from ..evaluation import SubnetEvaluator

        evaluator = SubnetEvaluator(supernet, data, split=split, calib_images=calib_images, batch_size=batch_size)

        def evaluate(arch) -> dict:
            r = evaluator.evaluate(arch)
            return {"accuracy": r["top1"], "kind": self.accuracy_kind, "loss": r["loss"],
                    "label_loyalty": r["label_loyalty"], "probability_loyalty": r["probability_loyalty"]}
        evaluate.robustness = evaluator.robustness  # adversarial attacks on the same re-calibrated subnets
        return evaluate

    def finetune(self, supernet, arch, data, epochs, checkpoint=None, calib_images=2000, train=None):
        from ..training.static import finetune_subnet

        return finetune_subnet(supernet, arch, data, epochs, checkpoint, calib_images, train=train)

    def evaluate_static(self, static, arch, data, split="val"):
        import torch.nn.functional as F

        from ..evaluation import predict, top1_accuracy

        images, labels = getattr(data, split).tensors(resolution=arch.resolution)
        logits = predict(static, images)
        return {"accuracy": top1_accuracy(logits, labels), "kind": self.accuracy_kind,
                "loss": float(F.cross_entropy(logits, labels))}

    def relaxed_task(self, supernet, data, batch_size=64, seed=0):
        from ..supernets.relaxed import RelaxedImageTask

        if not self.is_data(data):
            raise ConfigError("differentiable search trains on the supernet's images: it needs the data set "
                              "(--data, or the checkpoint's own)")
        return RelaxedImageTask(supernet, data, batch_size, seed)


register_family(MobileNetV3Family())

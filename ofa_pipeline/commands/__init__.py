"""One module per console command (``[project.scripts]`` in ``pyproject.toml``); each has ``main(argv=None) -> int``.

``python tools/<name>.py`` runs the same ``main`` for users working from a checkout.
"""

COMMANDS = ("train_supernet", "evaluate", "profile_device", "fit_predictor", "specialize", "export_onnx",
            "extract_optimal", "quickstart", "import_pretrained", "import_profile", "predict_table", "specialize_exits")

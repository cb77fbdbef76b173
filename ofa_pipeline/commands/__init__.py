"""One module per console command (``[project.scripts]`` in ``pyproject.toml``: ``ofa-<name>``);
each has ``main(argv=None) -> int``: it parses its arguments, calls the library (the other modules of
:mod:`ofa_pipeline`) and prints. ``tools/<name>.py`` in a checkout runs the same ``main``.
"""

COMMANDS = ("train_supernet", "evaluate", "profile_device", "fit_predictor", "specialize", "export_onnx",
            "extract_optimal", "quickstart", "import_pretrained", "import_profile", "predict_table", "specialize_exits")

#!/usr/bin/env python
"""Export one subnet of a trained supernet: ONNX (+ ncnn, TensorRT, INT8).

Same as the console command ``ofa-export-onnx``; see :mod:`ofa_pipeline.commands.export_onnx`.
"""

from ofa_pipeline.commands.export_onnx import main

if __name__ == "__main__":
    raise SystemExit(main())

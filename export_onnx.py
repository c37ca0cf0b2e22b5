#!/usr/bin/env python
"""Export a trained genremert folder to ONNX (waveform → logits), verified against PyTorch with onnxruntime.

python export_onnx.py --model runs/gtzan --output gtzan.onnx
"""

import sys

from genremert.publishing.onnx_export import main


if __name__ == "__main__":
    sys.exit(main())

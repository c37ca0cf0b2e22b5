#!/usr/bin/env python
"""Robustness curves of trained models: an SNR-bounded PGD attack on the waveform, white / band noise and low-pass
filtering, as accuracy and F1 (frame and song level) against the budget; JSON and a plot with every model.

    python robustness.py --model_dir outputs/sweep/plain/seed0 --model_dir outputs/sweep/lca/seed0 \
        --name plain --name lca --output_dir figures/robustness

The command line of `genremert.robustness` (its docstring describes the attack).
"""

import sys

from genremert.analysis.robustness import main


if __name__ == "__main__":
    sys.exit(main())

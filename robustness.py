#!/usr/bin/env python
"""Robustness curves of trained models: an SNR-bounded PGD attack on the waveform, white / band noise and low-pass
filtering, as accuracy and F1 (frame and song level) against the budget; JSON and a plot with every model.

    python robustness.py --model_dir outputs/sweep/plain/seed0 --model_dir outputs/sweep/lca/seed0 \
        --name plain --name lca --output_dir figures/robustness

One line per condition (a model's clean score, a PGD budget, a noise level or a cutoff) on stderr says what was done,
on how many slices, its score and the time left; OUT/robustness.json is rewritten (atomically) after each, so an
interrupted run keeps every condition that finished. The plot is drawn at the end.

The command line of `genremert.analysis.robustness` (its docstring describes the attack).
"""

import sys

from genremert.analysis.robustness import main


if __name__ == "__main__":
    sys.exit(main())

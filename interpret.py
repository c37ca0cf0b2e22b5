#!/usr/bin/env python
"""Interpretability of a trained genremert model: attention plots, evidence maps, t-SNE and the shortcut bias probe.

    python interpret.py --model_dir outputs/demo/lca --output_dir figures/lca

The command line of `genremert.analysis.cli` (its docstring and `--help` describe every option).
"""

import sys

from genremert.analysis.cli import main


if __name__ == "__main__":
    sys.exit(main())

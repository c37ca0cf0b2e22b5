#!/usr/bin/env python
"""The main job: the ground-truth attention study's quick version (where does the attention go, and does LCA move it?).

    python demo.py            # 2 bias structures × plain / LCA / oracle × 8 seeds, about 1.5 minutes on 2 idle CPU cores
    python demo.py --quick    # seconds
    python demo.py --audio    # the audio shortcut demo of CRNN_FGNL (also --audio --quick)

The command line of `genremert.demo` (its docstring and `--help` describe every option).
"""

import sys

from genremert.demo import main


if __name__ == "__main__":
    main(sys.argv[1:])

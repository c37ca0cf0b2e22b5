#!/usr/bin/env python
"""The shortcut demo: CRNN_FGNL trained plain and with LCA on the synthetic benchmark whose training songs of one
class carry band noise (paper Fig. 1).

    python demo.py            # the full demo
    python demo.py --quick    # a smoke version

The command line of `genremert.demo` (its docstring and `--help` describe every option).
"""

import sys

from genremert.demo import main


if __name__ == "__main__":
    main(sys.argv[1:])

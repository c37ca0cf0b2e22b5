#!/usr/bin/env python
"""Convert the LCA authors' released genreMERT Lightning checkpoints into a GenreMERTForAudioClassification folder.

    python convert_reference_checkpoint.py --checkpoint weights/genreMERT_LCA.ckpt --output_dir genremert-lca-reference

The command line of `genremert.conversion` (its docstring and `--help` describe every option).
"""

import sys

from genremert.publishing.conversion import main


if __name__ == "__main__":
    sys.exit(main())

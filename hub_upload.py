#!/usr/bin/env python
"""Publish a trained genremert model on the Hugging Face Hub (model card, verification, one atomic upload), and write
a Gradio Space that serves it.

    python hub_upload.py --output_dir outputs/genremert_lca --repo_id user/genremert-lca-gtzan --dry_run
    python hub_upload.py --repo_id user/genremert-lca-gtzan --space spaces/genremert-lca-gtzan

The command line of `genremert.publishing.hub_upload` (its docstring and `--help` describe every option).
"""

import sys

from genremert.publishing.hub_upload import main


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python
"""A web page for a trained genremert model: drop or record a song, see the song answer with the rule that produced
it, every slice's probabilities and vote over time, and the main branch's attention over time on the waveform.

    python app.py --model outputs/genremert_lca [--trust_remote_code] [--port 7860]

The command line of `genremert.analysis.web_app` (its docstring and `--help` describe every option). Needs gradio:
`pip install -e ".[app]"`.
"""

import sys

from genremert.analysis.web_app import main


if __name__ == "__main__":
    sys.exit(main())

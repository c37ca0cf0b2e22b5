#!/usr/bin/env python
"""Multi-seed ablations with paired statistics over run_classification.py: one run per (variant, seed), then
summary.json / summary.md / summary.png with each variant's Avg. / Best and its paired difference to the baseline.

    python run_experiments.py --variants plain,cal,lca --seeds 0,1,2 --output_dir outputs/sweep \
        -- configs/crnn_fgnl_lca_artist20_5s.json --data_dir /data/artist20
    accelerate launch --multi_gpu --num_processes 4 run_experiments.py --variants plain,lca --output_dir OUT -- ...

Finished runs are skipped and interrupted ones resume from their last good checkpoint. Fanned out over a job array
(docs/training.md, "A sweep as a job array"): each job runs one shard of the (variant, seed) runs, then one job merges:

    python run_experiments.py --variants plain,lca --seeds 0,1,2,3 --output_dir OUT --shard 2/4 -- ...
    python run_experiments.py --variants plain,lca --seeds 0,1,2,3 --output_dir OUT --summarize_only -- ...

The command line of `genremert.training.experiments` (docs/evidence.md).
"""

import sys

from genremert.training.experiments import main


if __name__ == "__main__":
    main()
    if "genremert.training.run" in sys.modules:  # audio runs (run_classification's main) ran: close their process group
        from genremert.training.run import end_process_group

        end_process_group()

#!/usr/bin/env python
"""Multi-seed ablations with paired statistics over run_classification.py: one run per (variant, seed), then
summary.json / summary.md / summary.png with each variant's Avg. / Best and its paired difference to the baseline.

    python run_experiments.py --variants plain,cal,lca --seeds 0,1,2 --output_dir outputs/sweep \
        -- configs/crnn_fgnl_lca_artist20_5s.json --data_dir /data/artist20
    accelerate launch --multi_gpu --num_processes 4 run_experiments.py --variants plain,lca --output_dir OUT -- ...

Finished runs are skipped and interrupted ones resume from their last good checkpoint. The command line of
`genremert.experiments` (docs/evidence.md).
"""

from genremert.training.experiments import main
from genremert.training.run import end_process_group


if __name__ == "__main__":
    main()
    end_process_group()

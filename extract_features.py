#!/usr/bin/env python
"""Run a frozen GenreMERT backbone once over a dataset's slices and keep its hidden states in a sharded feature store,
which heads then train and evaluate on without the backbone (`run_classification.py --feature_store DIR`).

The model and dataset flags are run_classification.py's; every process of a launch computes its own shards, and an
interrupted extraction resumes shard by shard. See docs/scaling.md.

One process (CPU or one GPU):

    python extract_features.py --model_type genremert --backbone_name_or_path m-a-p/MERT-v1-95M \
        --dataset gtzan --data_dir /data/gtzan --slice_seconds 10 --store_dtype int8 --output_dir stores/gtzan

A preset's model and data fields (its training fields are ignored), four GPUs:

    accelerate launch --num_processes 4 extract_features.py configs/genremert_lca.json --data_dir /data/gtzan \
        --backbone_name_or_path m-a-p/MERT-v1-95M --layers 0,6,12 --output_dir stores/gtzan

Two CPU processes: `torchrun --nproc_per_node 2 extract_features.py ...` (gloo). Two nodes on one shared filesystem:
`torchrun --nnodes 2 --node_rank R --master_addr HOST --master_port 29500 --nproc_per_node 8 extract_features.py ...`
(or `accelerate launch --num_machines 2 --machine_rank R --main_process_ip HOST --main_process_port 29500 ...`);
`--node_local_storage true` makes each node extract the whole store onto its own disk.

A mistake in the flags or the data is reported as one line `error: <message>` with exit status 2.
"""

import sys


def cli(argv=None) -> int:
    from genremert.training.feature_extraction import main
    from genremert.training.run import script_main

    return script_main(argv, entry=main)


if __name__ == "__main__":
    sys.exit(cli())

#!/usr/bin/env python
"""Train and evaluate GenreMERT or CRNN_FGNL, plain or with learnable counterfactual attention (LCA), on GTZAN,
artist20 or the synthetic shortcut benchmark; frame- and song-level scores, confusion matrices, TensorBoard logs and
a model folder that `pipeline("audio-classification", model=<output_dir>, trust_remote_code=True)` loads.

One process (CPU or one GPU):

    python run_classification.py --model_type crnn_fgnl --dataset synthetic --counterfactual learned \
        --cf_warmup_epochs 2 --num_train_epochs 6 --output_dir outputs/crnn_lca --do_train --do_eval --do_predict

A preset (one JSON file; flags after it override its values):

    python run_classification.py configs/genremert_lca.json --data_dir /data/gtzan \
        --backbone_name_or_path m-a-p/MERT-v1-95M --output_dir outputs/genremert_lca

Several GPUs (DDP), optionally in bf16:

    accelerate launch --multi_gpu --num_processes 4 run_classification.py configs/genremert_lca.json \
        --data_dir /data/gtzan --backbone_name_or_path m-a-p/MERT-v1-95M --bf16 true --output_dir outputs/x

Two CPU processes (gloo; with accelerate 1.15, `accelerate launch --cpu --num_processes 2` starts only one):

    ACCELERATE_USE_CPU=true accelerate launch --multi_gpu --num_processes 2 run_classification.py ...

Written to `--output_dir`: the final model (`config.json` with `auto_map`, `model.safetensors`,
`preprocessor_config.json`, the code files), `all_results.json` (`{eval,test}_{frame,song}_{accuracy,f1}`, ...),
`confusion_matrix_<split>_{frame,song}.{png,json}`, `classification_report_<split>.json`, `checkpoint-*/` and
TensorBoard logs under `runs/`. See docs/training.md.
"""

from genremert.training.run import end_process_group, main


if __name__ == "__main__":
    main()
    end_process_group()

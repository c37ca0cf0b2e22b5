#!/usr/bin/env bash
# The sweeps of docs/evidence.md (synthetic benchmark, CPU). Each is resumable: rerun to finish an interrupted one.
# Usage: bash benchmarks/evidence.sh [OUT]   (default outputs/evidence); summaries in OUT/<experiment>/summary.md
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-outputs/evidence}"
SEEDS="${SEEDS:-0,1,2}"

# A mid-size CRNN_FGNL (same architecture as the paper's, fewer channels and mel bands) and the synthetic singer set.
CRNN="n_fft=1024,hop_length=512,num_mel_bins=64,conv_channels=[16,32,32,32],fgnl_reduction=8,mose_hidden_size=8,gru_hidden_size=32"
SYNTH_EVERYWHERE='{"num_classes": 4, "albums_per_class": 4, "songs_per_album": 4, "song_seconds": 8.0}'
SYNTH_BURSTS='{"num_classes": 4, "albums_per_class": 4, "songs_per_album": 4, "song_seconds": 8.0, "bias_mode": "bursts", "bias_burst_fraction": 0.3}'
COMMON=(--dataset synthetic --data_dir "$OUT/synthetic_cache" --bias_class 0 --slice_seconds 2.0
        --num_train_epochs 8 --cf_warmup_epochs 2 --learning_rate 1e-3 --lr_scheduler_type constant
        --per_device_train_batch_size 16 --per_device_eval_batch_size 32 --eval_strategy no --save_strategy epoch
        --save_total_limit 1 --logging_strategy epoch --report_to none --disable_tqdm true
        --lambda_ce_main 1.0 --lambda_effect 1.0 --lambda_ce_cf 0.6 --lambda_ent_cf 0.3 --lambda_ent_main 0.1 --lambda_att 1.0
        --do_train --do_eval --do_predict)

sweep() {  # name, then run_classification arguments
  local name="$1"; shift
  python run_experiments.py --variants plain,lca --seeds "$SEEDS" --output_dir "$OUT/$name" -- "$@"
}

# Item 3/4: the shortcut an attention can avoid (noise bursts on 30 % of the time), each CRNN_FGNL branch kind.
sweep crnn_mose_bursts --model_type crnn_fgnl --synthetic_options "$SYNTH_BURSTS" --config_overrides "$CRNN" "${COMMON[@]}"
sweep crnn_time_bursts --model_type crnn_fgnl --synthetic_options "$SYNTH_BURSTS" \
  --config_overrides "$CRNN,counterfactual_attention=time" "${COMMON[@]}"
# GenreMERT on a small RANDOMLY INITIALISED backbone (real MERT weights need the Hub), same benchmark.
GENREMERT="attention_hidden_size=8,representation_size=16,backbone_config.hidden_size=64,backbone_config.num_hidden_layers=2,backbone_config.num_attention_heads=2,backbone_config.intermediate_size=128,backbone_config.conv_dim=[32,32,32],backbone_config.conv_stride=[5,4,4],backbone_config.conv_kernel=[10,4,4],backbone_config.num_conv_pos_embeddings=16,backbone_config.num_conv_pos_embedding_groups=2"
sweep genremert_random_backbone_bursts --model_type genremert --synthetic_options "$SYNTH_BURSTS" \
  --config_overrides "$GENREMERT" "${COMMON[@]}"
# Item 6: the official query-axis softmax vs our key axis (noise everywhere, the paper's Fig. 1 protocol).
sweep crnn_query_axis --model_type crnn_fgnl --synthetic_options "$SYNTH_EVERYWHERE" \
  --config_overrides "$CRNN,fgnl_softmax_axis=query" "${COMMON[@]}"
sweep crnn_key_axis --model_type crnn_fgnl --synthetic_options "$SYNTH_EVERYWHERE" \
  --config_overrides "$CRNN,fgnl_softmax_axis=key" "${COMMON[@]}"
# Item 5: the Fig. 1 protocol on a dataset without built-in noise (--bias_class NAME adds the band noise): the clean
# synthetic songs laid out as an artist20 folder (singer = artist, album = album), the noise on singer_0's training and
# validation songs at 15 dB SNR.
python - "$OUT/folder_dataset" <<'PY'
import os, sys
from genremert import load_synthetic
root = os.path.join(sys.argv[1], "mp3s-32k")
songs = load_synthetic(num_classes=4, albums_per_class=4, songs_per_album=4, song_seconds=8.0,
                       cache_dir=os.path.join(sys.argv[1], "..", "synthetic_cache"))
for split in ("train", "validation", "test"):
    for path, song_id in zip(songs[split]["audio"], songs[split]["song_id"]):
        singer, album, song = song_id.split("/")
        target = os.path.join(root, singer, album, song + ".wav")
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            os.symlink(os.path.abspath(path), target)
PY
COMMON_FOLDER=("${COMMON[@]}")
for i in "${!COMMON_FOLDER[@]}"; do  # the folder dataset replaces the synthetic one
  case "${COMMON_FOLDER[$i]}" in synthetic) COMMON_FOLDER[$i]=artist20 ;; esac
done
sweep crnn_mose_folder_protocol --model_type crnn_fgnl --config_overrides "$CRNN" "${COMMON_FOLDER[@]}" \
  --data_dir "$OUT/folder_dataset" --bias_class singer_0 --bias_snr_db 15

#!/usr/bin/env bash
# The ground-truth attention study of docs/evidence.md §1: both bias structures, every arm, 10 paired seeds, LCA's λ's
# also chosen by random search on in-distribution validation (and, as a labelled upper bound only, on the decorrelated
# test split). Two processes (one per structure); ≈ 25 min on the 2-core machine. Results: OUT/<structure>/summary.*
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-outputs/attention_study}
mkdir -p "$OUT"
cat > "$OUT/variants.json" <<'JSON'
{"plain_mean_attention": {"counterfactual": "none", "time_attention_input": "mean"},
 "oracle_mean_attention": {"counterfactual": "none", "attention_arm": "oracle", "time_attention_input": "mean"},
 "lca_mean_attention": {"counterfactual": "learned", "time_attention_input": "mean"}}
JSON
VARIANTS=plain,cal,lca,lca_demo,lca_no_effect,lca_no_ce_cf,lca_no_ent_cf,lca_no_ent_main,lca_no_att,lca_no_two_step
VARIANTS=$VARIANTS,oracle,shortcut_only,plain_mean_attention,oracle_mean_attention,lca_mean_attention
for structure in shared exclusive; do
  OMP_NUM_THREADS=1 python run_experiments.py --benchmark attention --variants "$VARIANTS" \
    --variants_file "$OUT/variants.json" --search_lca_weights 12 --search_upper_bound \
    --output_dir "$OUT/$structure" -- --bias_structure "$structure" > "$OUT/$structure.log" 2>&1 &
done
wait
uptime

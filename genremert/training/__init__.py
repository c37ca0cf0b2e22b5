"""Training: Eq. 1 (`lca_loss`), `LCATrainer` and its arguments (`trainer`), the script's flags (`arguments`), what a
run needs before it trains (`preparation`), the run itself (`run`), output-folder and checkpoint safety
(`run_folder`), multi-seed sweeps and their statistics (`experiments`). Depends on data, evaluation and publishing's
MERT weights."""

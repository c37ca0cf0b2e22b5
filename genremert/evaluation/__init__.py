"""Evaluation: frame- and song-level metrics and the vote threshold (`metrics`), tagging AUCs (`tagging_metrics`),
shortcut metrics (`shortcut`). Depends on `genremert.data` only."""

"""Analysis of trained models: attention and evidence maps and t-SNE (`attention_maps`), the tagger's heat maps
(`tagger_maps`), the shortcut probe (`bias_probe`), robustness curves (`robustness`), and `interpret.py`'s command
line (`cli`)."""

"""Publishing: the Hub export and its verification (`hub_upload`), what may be published (`export_checks`), the model
card (`model_card`), the authors' checkpoints converted (`conversion`) and MERT weights mapped (`mert_weights`)."""

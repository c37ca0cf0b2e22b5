"""The three models in the Auto classes, and the registry every stage of the library reads (`MODEL_CLASSES`).

Imported by `import genremert`: afterwards `AutoConfig` / `AutoModelForAudioClassification` resolve our model types
without `trust_remote_code` (the remote-code files never register anything themselves: no side effects on import).
"""

from transformers import AutoConfig, AutoModel, AutoModelForAudioClassification

from configuration_genremert import CRNNFGNLConfig, GenreMERTConfig, SelfAttentionTaggerConfig
from modeling_crnn_fgnl import CRNNFGNLForAudioClassification, CRNNFGNLModel
from modeling_genremert import GenreMERTForAudioClassification, GenreMERTModel
from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification, SelfAttentionTaggerModel


AutoConfig.register("genremert", GenreMERTConfig, exist_ok=True)
AutoConfig.register("crnn_fgnl", CRNNFGNLConfig, exist_ok=True)
AutoConfig.register("self_attention_tagger", SelfAttentionTaggerConfig, exist_ok=True)
AutoModelForAudioClassification.register(GenreMERTConfig, GenreMERTForAudioClassification, exist_ok=True)
AutoModelForAudioClassification.register(CRNNFGNLConfig, CRNNFGNLForAudioClassification, exist_ok=True)
AutoModelForAudioClassification.register(
    SelfAttentionTaggerConfig, SelfAttentionTaggerForAudioClassification, exist_ok=True
)
# the base models (pooled embedding, hidden states, attention): `AutoModel` on any of our folders
AutoModel.register(GenreMERTConfig, GenreMERTModel, exist_ok=True)
AutoModel.register(CRNNFGNLConfig, CRNNFGNLModel, exist_ok=True)
AutoModel.register(SelfAttentionTaggerConfig, SelfAttentionTaggerModel, exist_ok=True)

# model_type → (config class, model class): every model the library trains, evaluates and publishes.
MODEL_CLASSES = {
    "genremert": (GenreMERTConfig, GenreMERTForAudioClassification),
    "crnn_fgnl": (CRNNFGNLConfig, CRNNFGNLForAudioClassification),
    "self_attention_tagger": (SelfAttentionTaggerConfig, SelfAttentionTaggerForAudioClassification),
}


def untrusted_code_message(source: str, flag: str) -> str:
    """The refusal when a folder or Hub id would need its own code to load: who asked, and the opt-in flag."""
    return (
        f"{flag} {source}: loading it would run the Python code shipped with it (its config names a model type this "
        "library does not register). That code runs only with --trust_remote_code (as in Transformers' example "
        "scripts): pass it only for a source you trust."
    )


def load_pretrained(loader, source, *, trust_remote_code: bool = False, flag: str = "--model_name_or_path", **kwargs):
    """`loader.from_pretrained(source, trust_remote_code=..., **kwargs)` with the library's trust rule: our own model
    types are registered, so they never need remote code; anything else runs the source's code only when the user
    opted in. A refusal names the flag, the source and `--trust_remote_code`; nothing of the source has run then."""
    try:
        return loader.from_pretrained(source, trust_remote_code=bool(trust_remote_code), **kwargs)
    except ValueError as error:
        if not trust_remote_code and "trust_remote_code" in str(error):
            raise ValueError(untrusted_code_message(str(source), flag)) from error
        raise


def _register_song_pipeline() -> None:
    """Our song-level pipeline under its own task name, from the installed module: after `import genremert`,
    `pipeline("genremert-audio-classification", model=folder)` runs it with no remote code. (The task
    "audio-classification" on a saved folder names the folder's own copy in `config.custom_pipelines`, which
    Transformers runs only with `trust_remote_code=True`.)"""
    from transformers import pipelines

    from pipeline_genremert import SongLevelAudioClassificationPipeline

    pipelines.PIPELINE_REGISTRY.register_pipeline(
        SONG_PIPELINE_TASK,
        pipeline_class=SongLevelAudioClassificationPipeline,
        pt_model=AutoModelForAudioClassification,
        type="audio",
    )


SONG_PIPELINE_TASK = "genremert-audio-classification"
_register_song_pipeline()

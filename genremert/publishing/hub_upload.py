"""Publish a trained genremert model on the Hugging Face Hub.

From a training output folder (written by `run_classification.py`) this script

1. loads the model from `model.safetensors` only (`use_safetensors=True`; nothing is unpickled),
2. removes the counterfactual branch (LCA is used only in training, paper §3),
3. writes a Hub-ready export folder: `config.json` with `auto_map`, `model.safetensors`, the remote-code
   files, `preprocessor_config.json`, the metrics JSON files and confusion-matrix images of the run, and a
   `README.md` model card whose YAML metadata carries a `model-index` with the run's test metrics,
4. reloads that folder in a fresh Python process with `trust_remote_code=True` and with this repository's
   modules made unimportable, and checks the logits are identical to the trained model's on a fixed input,
5. refuses any pickle-capable file (`.bin`, `.pt`, `.pth`, `.pkl`, `.ckpt`, ... or pickle bytes),
6. uploads the folder as ONE commit (`HfApi.upload_folder`). A commit is atomic on the Hub: a failed
   upload publishes nothing, and running the same command again is the fix.

Usage:

```bash
python hub_upload.py --output_dir outputs/genremert_lca --repo_id user/genremert-lca-gtzan --dry_run
python hub_upload.py --output_dir outputs/genremert_lca --repo_id user/genremert-lca-gtzan --private
python hub_upload.py --repo_id user/genremert-lca-gtzan --space spaces/genremert-lca-gtzan   # a Gradio Space folder
```

`--space DIR` writes a ready Hugging Face Space that serves the model repo `--repo_id` on a web page (`app.py`, the
page of `genremert.analysis.web_app`; see `genremert.publishing.space`). Alone it only writes the folder; with
`--output_dir` the model is exported (and uploaded unless `--dry_run`) first. Push the folder with
`hf upload user/space-name DIR . --repo-type space`.

The token comes from `--token`, else the `HF_TOKEN` environment variable, else the `hf auth login` cache
(huggingface_hub's default order).
"""

import argparse
import json
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .export_checks import ExportError, check_no_links, check_no_pickle, find_pickle_files  # noqa: F401 - part of the API
from .model_card import CARD_MARKER, build_model_card
from .space import write_space
from .verification import _fixed_inputs, remote_code_files, repository_modules, verify_export_folder  # noqa: F401


# Files of a training output folder that may be published next to the model (never `training_args.bin`).
EXTRA_FILE_PATTERNS = (
    "*_results.json",  # all_results.json, run_results.json, eval_results.json, test_results.json, ...
    "confusion_matrix_*.png",
    "confusion_matrix_*.json",
    "classification_report_*.json",
    "*_tag_report.json",  # per-tag ROC-AUC / PR-AUC and the excluded tags of a tagging run
)
# JSON files of the run's arguments (read for the card, never unpickled): a dedicated arguments file if the training
# script writes one, else `run_results.json` (the run's settings that run_classification.py saves).
RUN_ARGS_FILES = ("run_args.json", "run_arguments.json", "run_results.json")
# The model files of a run folder that the export loads.
PUBLISHED_RUN_FILES = ("config.json", "model.safetensors", "preprocessor_config.json")


class HubUploadError(RuntimeError):
    """The upload to the Hub failed (the single commit was not made, so nothing was published)."""


@dataclass
class ExportReport:
    """What `export_for_hub` built and verified."""

    export_dir: Path
    files: list
    num_parameters: int
    model_class: str
    trained_counterfactual: str
    max_abs_logit_difference: float
    pipeline_labels: list = field(default_factory=list)


# --------------------------------------------------------------------------------------------------
# Reading the training output folder (JSON only)
# --------------------------------------------------------------------------------------------------


def _read_json(path: Path, what: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            value = json.load(handle)
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: {what} is not valid JSON ({error}).") from error
    if not isinstance(value, dict):
        raise ExportError(f"{path}: {what} must be a JSON object, got {type(value).__name__}.")
    return value


def read_run_metrics(output_dir: Path) -> dict:
    """The run's metrics from `all_results.json` (empty if the run wrote none); only numbers are kept."""
    path = Path(output_dir) / "all_results.json"
    if not path.is_file():
        return {}
    metrics = _read_json(path, "the run's metrics")
    return {
        key: value for key, value in metrics.items() if isinstance(value, (int, float)) and not isinstance(value, bool)
    }


def read_run_arguments(output_dir: Path) -> dict:
    """The run's settings from the JSON files of `RUN_ARGS_FILES` present, merged (earlier files win); one level of
    nesting (`{"model_args": {...}, ...}`) is flattened. Empty if none. `training_args.bin` (a pickle written by
    `Trainer`) is never read."""
    merged = {}
    for name in reversed(RUN_ARGS_FILES):
        path = Path(output_dir) / name
        if path.is_file():
            for key, value in _read_json(path, "the run's settings").items():
                if isinstance(value, dict):
                    merged.update(value)
                else:
                    merged[key] = value
    return merged


# --------------------------------------------------------------------------------------------------
# The model card
# --------------------------------------------------------------------------------------------------


def _prepare_export_dir(export_dir: Path) -> None:
    """Create `export_dir`, or empty it if it is a previous export of this script; refuse anything else."""
    if export_dir.exists():
        if not export_dir.is_dir():
            raise ExportError(f"--export_dir {export_dir} exists and is not a folder.")
        if any(export_dir.iterdir()):
            card = export_dir / "README.md"
            is_previous_export = card.is_file() and CARD_MARKER in card.read_text(encoding="utf-8", errors="replace")
            if not is_previous_export:
                raise ExportError(
                    f"--export_dir {export_dir} exists, is not empty and is not a previous export of hub_upload.py "
                    "(its README.md lacks the marker); choose another --export_dir."
                )
            shutil.rmtree(export_dir)
    export_dir.mkdir(parents=True, exist_ok=True)


def load_trained_model(output_dir: Path):
    """The model of a training output folder, from `model.safetensors` only (no pickle is ever read)."""
    output_dir = Path(output_dir)
    if not output_dir.is_dir():
        raise ExportError(f"--output_dir {output_dir} is not a folder.")
    if not (output_dir / "config.json").is_file():
        raise ExportError(
            f"{output_dir} has no config.json: expected a training output folder of run_classification.py."
        )
    if not (output_dir / "model.safetensors").is_file() and not (output_dir / "model.safetensors.index.json").is_file():
        raise ExportError(
            f"{output_dir} has no model.safetensors: only safetensors weights are published (pickled weights such "
            "as pytorch_model.bin are refused)."
        )
    from transformers import AutoModelForAudioClassification

    from ..registry import load_pretrained

    try:  # only our registered model types, with this repository's code: the folder's own code files never run
        model = load_pretrained(
            AutoModelForAudioClassification,
            output_dir,
            trust_remote_code=False,
            flag="--output_dir",
            use_safetensors=True,
        )
    except (OSError, ValueError, KeyError) as error:
        raise ExportError(f"{output_dir}: the model does not load ({type(error).__name__}: {error}).") from error
    if not hasattr(model, "remove_counterfactual_branch"):
        raise ExportError(
            f"{output_dir}/config.json describes {type(model).__name__}, not a genremert model "
            "(model_type 'genremert' or 'crnn_fgnl')."
        )
    return model


def _load_feature_extractor(output_dir: Path, config):
    from transformers import Wav2Vec2FeatureExtractor

    if (Path(output_dir) / "preprocessor_config.json").is_file():
        return Wav2Vec2FeatureExtractor.from_pretrained(output_dir)
    from modeling_lca_genremert import build_feature_extractor

    return build_feature_extractor(config)


def check_code_drift(output_dir: Path, allow_code_update: bool) -> list[str]:
    """The code files of `output_dir` that differ from this repository's (which the export will carry)."""
    repository = Path(__file__).resolve().parents[2]
    changed = []
    for name in remote_code_files():
        theirs = Path(output_dir) / name
        if (
            theirs.is_file()
            and (repository / name).is_file()
            and theirs.read_bytes() != (repository / name).read_bytes()
        ):
            changed.append(name)
    if changed and not allow_code_update:
        raise ExportError(
            f"the code files {changed} of {output_dir} differ from this repository's, which the export would publish "
            "instead: the model was trained with another version of genremert. Publish with that version, or pass "
            "--allow_code_update to publish this version's code (the verification still checks identical logits)."
        )
    if changed:
        print(f"warning: exporting this repository's version of {changed} (the training folder's copies differ).")
    return changed


def export_for_hub(
    output_dir,
    export_dir,
    repo_id: str,
    dataset: str | None = None,
    license: str | None = None,
    check_pipeline: bool = True,
    allow_code_update: bool = False,
) -> ExportReport:
    """Build and verify the Hub-ready folder `export_dir` from the training output `output_dir`.

    The export carries this repository's code files. When the training folder's own copies differ (it was trained
    with another version of genremert), that is refused naming the files, unless `allow_code_update` (then a
    warning names them). Raises `ExportError` with the reason if anything is missing or the reloaded folder differs.
    """
    output_dir, export_dir = Path(output_dir), Path(export_dir)
    if export_dir.resolve() == output_dir.resolve():
        raise ExportError("--export_dir must differ from --output_dir: the training output is never modified.")
    # Every file this export reads or copies must be the run folder's own: no link, nothing resolving outside it.
    check_no_links(output_dir, (*PUBLISHED_RUN_FILES, *EXTRA_FILE_PATTERNS, *RUN_ARGS_FILES, *remote_code_files()))
    check_code_drift(output_dir, allow_code_update)
    model = load_trained_model(output_dir)
    trained_counterfactual = model.config.counterfactual
    model.remove_counterfactual_branch()
    model.eval()
    if model.config.counterfactual != "none":
        raise ExportError("remove_counterfactual_branch() did not set config.counterfactual to 'none'.")
    num_parameters = sum(parameter.numel() for parameter in model.parameters())
    feature_extractor = _load_feature_extractor(output_dir, model.config)

    _prepare_export_dir(export_dir)
    model.save_pretrained(export_dir, safe_serialization=True)
    feature_extractor.save_pretrained(export_dir)

    saved_config = _read_json(export_dir / "config.json", "the exported config")
    if "auto_map" not in saved_config:
        raise ExportError(
            f"{export_dir}/config.json has no auto_map: the model class was not registered for auto class."
        )
    missing_code = [name for name in remote_code_files(type(model)) if not (export_dir / name).is_file()]
    if missing_code:
        raise ExportError(f"save_pretrained did not copy the code files {missing_code} into {export_dir}.")

    image_files = []
    for pattern in EXTRA_FILE_PATTERNS:
        for source in sorted(output_dir.glob(pattern)):
            if source.is_file() and not source.is_symlink():
                shutil.copy2(source, export_dir / source.name)
                if source.suffix == ".png" and "_test" in source.name:  # the card shows the test splits' matrices
                    image_files.append(source.name)

    card = build_model_card(
        model.config,
        repo_id=repo_id,
        metrics=read_run_metrics(output_dir),
        run_arguments=read_run_arguments(output_dir),
        trained_counterfactual=trained_counterfactual,
        num_parameters=num_parameters,
        image_files=image_files,
        dataset=dataset,
        license=license,
    )
    (export_dir / "README.md").write_text(card, encoding="utf-8")
    check_no_pickle(export_dir)

    inputs = _fixed_inputs(model.config)
    with torch.no_grad():
        reference_logits = model(**inputs).logits  # (batch, num_labels)
    report = verify_export_folder(export_dir, reference_logits, inputs, check_pipeline=check_pipeline)
    if report["num_parameters"] != num_parameters:
        raise ExportError(
            f"The reloaded export has {report['num_parameters']:,} parameters, the trained model without its "
            f"counterfactual branch {num_parameters:,}."
        )
    return ExportReport(
        export_dir=export_dir,
        files=sorted(str(path.relative_to(export_dir)) for path in export_dir.rglob("*") if path.is_file()),
        num_parameters=num_parameters,
        model_class=report["class_name"],
        trained_counterfactual=trained_counterfactual,
        max_abs_logit_difference=report["max_abs_logit_difference"],
        pipeline_labels=report.get("pipeline_labels", []),
    )


# --------------------------------------------------------------------------------------------------
# Upload
# --------------------------------------------------------------------------------------------------


def upload_to_hub(
    export_dir,
    repo_id: str,
    api,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
):
    """Upload `export_dir` to the model repo `repo_id` at `revision` as one commit.

    `api` is an `huggingface_hub.HfApi` (or any object with its `create_repo`, `create_branch` and
    `upload_folder` methods). The folder is checked for pickle files first. A failure raises
    `HubUploadError`: the single commit was not made, so nothing was published; rerun to retry.
    """
    export_dir = Path(export_dir)
    check_repo_id(repo_id)
    check_no_pickle(export_dir)
    revision = revision or "main"
    where = f"{repo_id} (revision {revision})"
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision != "main":
            api.create_branch(repo_id, branch=revision, repo_type="model", exist_ok=True)
        commit = api.upload_folder(
            repo_id=repo_id,
            folder_path=str(export_dir),
            repo_type="model",
            revision=revision,
            commit_message=commit_message or "Upload genremert model (exported by hub_upload.py)",
        )
    except Exception as error:  # any client or network failure: report it with what to do next
        raise HubUploadError(
            f"Uploading {export_dir} to {where} failed: {type(error).__name__}: {error}\n"
            "No model files were published: the upload is a single commit, which the Hub applies entirely or not "
            f"at all. The verified folder is still at {export_dir}; fix the cause (token, permissions, network) "
            "and run the same command again."
        ) from error
    return commit


def check_repo_id(repo_id: str) -> None:
    """Raise `HubUploadError` unless `repo_id` is a Hub model id `user_or_org/model_name` the Hub accepts."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(repo_id, str) or repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubUploadError(f"--repo_id must look like 'user_or_org/model_name', got {repo_id!r}.")
    try:
        validate_repo_id(repo_id)
    except HFValidationError as error:
        raise HubUploadError(f"--repo_id {repo_id!r} is not a valid Hub repository id: {error}") from None


def publish(
    output_dir,
    repo_id: str,
    export_dir=None,
    private: bool = False,
    revision: str | None = None,
    dry_run: bool = False,
    token: str | None = None,
    api_factory: Callable | None = None,
    dataset: str | None = None,
    license: str | None = None,
    commit_message: str | None = None,
    check_pipeline: bool = True,
    allow_code_update: bool = False,
):
    """Export, verify and (unless `dry_run`) upload. Returns `(ExportReport, commit info or None)`.

    `api_factory(token)` builds the Hub client (default `huggingface_hub.HfApi(token=token)`); tests pass a
    local stand-in.
    """
    check_repo_id(repo_id)  # before any work: a dry run with an id the Hub refuses must not pass
    output_dir = Path(output_dir)
    export_dir = Path(export_dir) if export_dir is not None else output_dir / "hub_export"
    report = export_for_hub(
        output_dir,
        export_dir,
        repo_id=repo_id,
        dataset=dataset,
        license=license,
        check_pipeline=check_pipeline,
        allow_code_update=allow_code_update,
    )
    if dry_run:
        return report, None
    if api_factory is None:
        from huggingface_hub import HfApi

        api_factory = lambda token: HfApi(token=token)
    commit = upload_to_hub(
        report.export_dir,
        repo_id,
        api_factory(token),
        private=private,
        revision=revision,
        commit_message=commit_message,
    )
    return report, commit


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output_dir", default=None, help="Training output folder of run_classification.py (optional with --space)."
    )
    parser.add_argument("--repo_id", required=True, help="Hub model repo, 'user_or_org/model_name'.")
    parser.add_argument(
        "--export_dir", default=None, help="Where to write the Hub-ready folder (default: <output_dir>/hub_export)."
    )
    parser.add_argument(
        "--private", action="store_true", help="Create the repo as private (an existing repo keeps its visibility)."
    )
    parser.add_argument("--revision", default="main", help="Branch to commit to (created from main if missing).")
    parser.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN, then the `hf auth login` cache).")
    parser.add_argument("--dry_run", action="store_true", help="Export and verify, but do not upload.")
    parser.add_argument("--dataset", default=None, help="Dataset name for the card (default: from run_args.json).")
    parser.add_argument(
        "--license", default=None, help="Licence for the card (default: cc-by-nc-4.0 for GenreMERT, mit for CRNN_FGNL)."
    )
    parser.add_argument("--commit_message", default=None)
    parser.add_argument(
        "--skip_pipeline_check", action="store_true", help="Do not run the pipeline in the verification process."
    )
    parser.add_argument(
        "--allow_code_update",
        action="store_true",
        help="Publish this repository's code files although the training folder's own copies differ.",
    )
    parser.add_argument(
        "--space",
        default=None,
        metavar="DIR",
        help="Also write a Hugging Face Space folder (Gradio app) serving --repo_id; alone, only the Space is written.",
    )
    args = parser.parse_args(argv)
    if args.output_dir is None and args.space is None:
        parser.error("--output_dir is required (or --space DIR alone, to write only a Space for --repo_id).")
    if args.output_dir is None:
        return _write_space_or_fail(args.space, args.repo_id)
    try:
        report, commit = publish(
            args.output_dir,
            args.repo_id,
            export_dir=args.export_dir,
            private=args.private,
            revision=args.revision,
            dry_run=args.dry_run,
            token=args.token,
            dataset=args.dataset,
            license=args.license,
            commit_message=args.commit_message,
            check_pipeline=not args.skip_pipeline_check,
            allow_code_update=args.allow_code_update,
        )
    except (ExportError, HubUploadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        f"Verified export ({report.model_class}, {report.num_parameters:,} parameters, trained with "
        f"counterfactual={report.trained_counterfactual!r}; reloaded logits identical): {report.export_dir}"
    )
    for name in report.files:
        print(f"  {name}")
    if commit is None:
        print("Dry run: nothing was uploaded.")
    else:
        print(
            f"Uploaded to https://huggingface.co/{args.repo_id} (revision {args.revision}): {getattr(commit, 'commit_url', commit)}"
        )
    return _write_space_or_fail(args.space, args.repo_id) if args.space else 0


def _write_space_or_fail(space_dir, repo_id: str) -> int:
    """`--space DIR`: write the Space of `repo_id`, list its files and say how to push it; 1 with the reason if not."""
    try:
        check_repo_id(repo_id)
        files = write_space(space_dir, repo_id)
    except (ExportError, HubUploadError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"Wrote the Space of {repo_id} (Gradio app): {space_dir}")
    for name in files:
        print(f"  {name}")
    print(f"Push it with: hf upload <user>/<space-name> {space_dir} . --repo-type space")
    return 0

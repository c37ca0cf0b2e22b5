"""Multi-label tagging: the models' multi-label loss, the LCA terms for sigmoid outputs against hand values, the
self-attention tagger, tagging metrics per split, the pipeline's tag output, and the MagnaTagATune loader."""

import json
import math
import shutil
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from mtat_tree import RARE_TAG, TAGS, write_mtat_tree
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config, tiny_self_attention_tagger_config
from torch.nn import functional as F
from transformers import pipeline

from configuration_genremert import SelfAttentionTaggerConfig
from genremert import (
    MODEL_CLASSES,
    SliceCollator,
    counterfactual_effect,
    lca_loss_terms,
    load_magnatagatune,
    mean_entropy,
)
from genremert.data.magnatagatune import read_annotations, song_of_clip, top_tags
from genremert.evaluation.tagging_metrics import compute_tagging_split_metrics
from modeling_self_attention_tagger import SelfAttentionTaggerForAudioClassification


TINY_CONFIGS = {
    "genremert": tiny_genremert_config,
    "crnn_fgnl": tiny_crnn_fgnl_config,
    "self_attention_tagger": tiny_self_attention_tagger_config,
}
RATES = {"genremert": 24000, "crnn_fgnl": 16000, "self_attention_tagger": 16000}


def multi_label_model(model_type, **overrides):
    torch.manual_seed(0)
    config = TINY_CONFIGS[model_type](problem_type="multi_label_classification", num_labels=4, **overrides)
    return MODEL_CLASSES[model_type][1](config)


def waveform(model_type, batch_size=3, seconds=0.5, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return 0.1 * torch.randn(batch_size, int(RATES[model_type] * seconds), generator=generator)


# ----------------------------------------------------------------------------------------------------------------------
# Multi-label in every model
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
@pytest.mark.parametrize("mode", ["none", "learned", "random"])
def test_multi_label_loss_is_bce_of_every_tag(model_type, mode):
    model = multi_label_model(model_type, counterfactual=mode).train()
    targets = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0]])
    torch.manual_seed(3)
    output = model(waveform(model_type), labels=targets)
    torch.testing.assert_close(output.loss, F.binary_cross_entropy_with_logits(output.logits, targets))
    if mode != "none":  # CAL's random attention and LCA's learned one work unchanged with tags
        assert output.counterfactual_logits.shape == targets.shape
        terms = lca_loss_terms(
            output.logits,
            targets,
            output.counterfactual_logits,
            output.attention,
            output.counterfactual_attention,
            multi_label=True,
        )
        assert set(terms) == {"ce_main", "ent_main", "effect", "ce_cf", "ent_cf", "att"}
        assert all(torch.isfinite(value) for value in terms.values())


@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_multi_label_bad_targets_are_named(model_type):
    model = multi_label_model(model_type).eval()
    inputs = waveform(model_type, batch_size=2)
    with pytest.raises(ValueError, match=r"multi-hot targets of shape \(2, 4\)"):
        model(inputs, labels=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model(inputs, labels=torch.full((2, 4), 2.0))
    single = MODEL_CLASSES[model_type][1](TINY_CONFIGS[model_type](num_labels=4, problem_type=None)).eval()
    if model_type != "self_attention_tagger":
        with pytest.raises(ValueError, match="problem_type = 'multi_label_classification'"):
            single(inputs, labels=torch.zeros(2, 4))


# ----------------------------------------------------------------------------------------------------------------------
# LCA terms for sigmoid outputs, against hand values
# ----------------------------------------------------------------------------------------------------------------------


def _sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def _bce(logit, target):
    p = _sigmoid(logit)
    return -(target * math.log(p) + (1 - target) * math.log(1 - p))


def _bernoulli_entropy(logit):
    p = _sigmoid(logit)
    return -(p * math.log(p) + (1 - p) * math.log(1 - p))


def test_multi_label_lca_terms_match_hand_values():
    y = [[2.0, -1.0, 0.3], [-0.5, 1.5, 0.0]]
    y_cf = [[0.5, 0.5, -2.0], [1.0, -1.0, 0.2]]
    t = [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    attention = torch.tensor([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    counterfactual_attention = torch.tensor([[0.2, 0.3, 0.5], [0.3, 0.3, 0.4]])
    cells = [(i, j) for i in range(2) for j in range(3)]

    def mean(values):
        return sum(values) / len(values)

    expected = {
        "ce_main": mean([_bce(y[i][j], t[i][j]) for i, j in cells]),
        "ce_cf": mean([_bce(y_cf[i][j], t[i][j]) for i, j in cells]),
        "ent_main": mean([_bernoulli_entropy(y[i][j]) for i, j in cells]),
        "ent_cf": mean([_bernoulli_entropy(y_cf[i][j]) for i, j in cells]),
        # The effect: each tag's probability under the main attention minus under the counterfactual one, read as a
        # logit by the BCE (the reference feeds its softmax difference to the CE the same way).
        "effect": mean([_bce(_sigmoid(y[i][j]) - _sigmoid(y_cf[i][j]), t[i][j]) for i, j in cells]),
        "att": mean(
            [abs(a - b) for a, b in zip(attention.flatten().tolist(), counterfactual_attention.flatten().tolist())]
        ),
    }
    terms = lca_loss_terms(
        torch.tensor(y),
        torch.tensor(t),
        torch.tensor(y_cf),
        attention,
        counterfactual_attention,
        multi_label=True,
    )
    for name, value in expected.items():
        assert float(terms[name]) == pytest.approx(value, rel=1e-5), name
    logits_effect = lca_loss_terms(
        torch.tensor(y), torch.tensor(t), torch.tensor(y_cf), effect_type="logits", multi_label=True
    )
    assert float(logits_effect["effect"]) == pytest.approx(
        mean([_bce(y[i][j] - y_cf[i][j], t[i][j]) for i, j in cells]), rel=1e-5
    )


def test_bernoulli_entropy_is_exact_for_large_logits_and_bounded_by_ln2():
    logits = torch.tensor([[-200.0, 0.0, 200.0]])
    entropy = mean_entropy(logits, multi_label=True)
    assert float(entropy) == pytest.approx(math.log(2) / 3, rel=1e-6)  # only the logit 0 is uncertain
    assert torch.isfinite(entropy)
    effect = counterfactual_effect(torch.tensor([[3.0]]), torch.tensor([[3.0]]), "softmax", multi_label=True)
    assert float(effect) == 0.0  # identical branches: no effect on any tag


def test_collator_turns_tag_lists_into_multi_hot_targets():
    extractor = MODEL_CLASSES["crnn_fgnl"][0]  # any config: the collator only needs an extractor
    from genremert import build_feature_extractor

    collator = SliceCollator(build_feature_extractor(extractor(num_labels=3)), {"a": 0, "b": 1}, num_tags=3)
    rows = [
        {"input_values": np.zeros(1000, np.float32), "label": [0, 2], "song_id": "a"},
        {"input_values": np.zeros(1000, np.float32), "label": [], "song_id": "b"},
    ]
    batch = collator(rows)
    assert torch.equal(batch["labels"], torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]]))
    with pytest.raises(ValueError, match=r"tag id 5 is not in \[0, 3\)"):
        collator([{**rows[0], "label": [5]}])
    with pytest.raises(ValueError, match="list of its tag ids"):
        collator([{**rows[0], "label": 1}])


# ----------------------------------------------------------------------------------------------------------------------
# The self-attention tagger
# ----------------------------------------------------------------------------------------------------------------------


def test_tagger_defaults_are_the_papers_and_multi_label():
    config = SelfAttentionTaggerConfig(num_labels=50)
    assert config.problem_type == "multi_label_classification" and config.song_aggregation == "mean"
    assert (config.sampling_rate, config.n_fft, config.hop_length, config.num_mel_bins) == (16000, 512, 256, 128)
    assert (config.hidden_size, config.num_hidden_layers, config.num_attention_heads) == (256, 2, 8)
    with torch.device("meta"):
        plain = SelfAttentionTaggerForAudioClassification(config)
        lca = SelfAttentionTaggerForAudioClassification(
            SelfAttentionTaggerConfig(num_labels=50, counterfactual="learned")
        )
    assert plain.mel_after_front_end == 1  # the conv blocks pool the 128 mel bands away
    branch = sum(p.numel() for p in lca.counterfactual_parameters())
    assert branch == 2 * (256 * 256 + 256)  # a second query and key projection of the classification token
    assert lca.remove_counterfactual_branch().num_parameters() == plain.num_parameters()
    with pytest.raises(ValueError, match="divisible by `num_attention_heads`"):
        SelfAttentionTaggerConfig(hidden_size=10, num_attention_heads=4)
    with pytest.raises(ValueError, match="conv_strides"):
        SelfAttentionTaggerConfig(conv_strides=[[2, 2]])


def test_tagger_last_layer_is_a_full_bert_layer_read_at_the_classification_token():
    """Computing only the classification token's row of the last layer is exact: a full layer with the same weights
    gives the same classification-token output."""
    torch.manual_seed(0)
    model = SelfAttentionTaggerForAudioClassification(tiny_self_attention_tagger_config()).eval()
    tokens = model.encode(model.compute_log_mel(waveform("self_attention_tagger", 2)))[0]
    last = model.last_layer
    heads, size = last.num_heads, last.head_size

    def split(states):
        return states.view(states.shape[0], states.shape[1], heads, size).transpose(1, 2)

    query, key = split(last.class_attention.query(tokens)), split(last.class_attention.key(tokens))
    value = split(last.value(tokens))
    weights = (query @ key.transpose(-1, -2) / math.sqrt(size)).softmax(-1)  # every token's row
    context = (weights @ value).transpose(1, 2).flatten(2)
    full = last.feed_forward(context, tokens)  # (batch, tokens, hidden)
    torch.testing.assert_close(last.class_token_output(tokens, last.class_attention(tokens)), full[:, 0])


def test_tagger_attention_maps_and_padding():
    torch.manual_seed(0)
    model = SelfAttentionTaggerForAudioClassification(tiny_self_attention_tagger_config(num_hidden_layers=3)).eval()
    inputs = waveform("self_attention_tagger", 2, seconds=1.0)
    output = model(inputs, output_attentions=True)
    tokens = output.attention.shape[-1]
    assert [tuple(a.shape) for a in output.attentions] == [(2, 2, tokens, tokens)] * 2 + [(2, 2, 1, tokens)]
    torch.testing.assert_close(output.attentions[-1][:, :, 0], output.attention)
    mask = torch.ones_like(inputs, dtype=torch.long)
    mask[1, 8000:] = 0
    masked = model(inputs, attention_mask=mask)
    real = int(model.token_lengths(mask)[1]) + 1  # the classification token and the real steps
    assert torch.all(masked.attention[1, :, real:] == 0) and torch.all(masked.attention[1, :, :real] > 0)
    assert torch.equal(masked.attention[0], model(inputs).attention[0])
    torch.testing.assert_close(model.logits_with_attention(inputs, output.attention), output.logits)
    with pytest.raises(ValueError, match="max_position_embeddings"):
        model(waveform("self_attention_tagger", 1, seconds=6.0))


# ----------------------------------------------------------------------------------------------------------------------
# Metrics of a split, song aggregation
# ----------------------------------------------------------------------------------------------------------------------


def test_split_metrics_score_songs_by_the_mean_of_their_slices():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    song_targets = np.array([[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 1]])
    song_index = np.repeat(np.arange(4), 3)  # 3 slices per song
    logits = rng.normal(size=(12, 3))
    metrics = compute_tagging_split_metrics(logits, song_targets[song_index], song_index, ["a", "b", "c"], logits - 1)
    slice_probabilities = 1 / (1 + np.exp(-logits))
    song_probabilities = slice_probabilities.reshape(4, 3, 3).mean(axis=1)
    expected_roc = np.mean([roc_auc_score(song_targets[:, k], song_probabilities[:, k]) for k in range(3)])
    expected_pr = np.mean([average_precision_score(song_targets[:, k], song_probabilities[:, k]) for k in range(3)])
    assert metrics["song_roc_auc"] == pytest.approx(expected_roc)
    assert metrics["song_pr_auc"] == pytest.approx(expected_pr)
    frame = np.mean([roc_auc_score(song_targets[song_index][:, k], slice_probabilities[:, k]) for k in range(3)])
    assert metrics["frame_roc_auc"] == pytest.approx(frame)
    assert (metrics["num_songs"], metrics["num_slices"], metrics["song_num_excluded_tags"]) == (4, 12, 0)
    assert "counterfactual_song_roc_auc" in metrics


# ----------------------------------------------------------------------------------------------------------------------
# Pipeline: tags with probabilities
# ----------------------------------------------------------------------------------------------------------------------


def test_pipeline_returns_tags_with_probabilities(tmp_path):
    model = multi_label_model("self_attention_tagger", id2label={0: "rock", 1: "piano", 2: "vocal", 3: "slow"})
    model.save_pretrained(tmp_path)
    tagger = pipeline("audio-classification", model=str(tmp_path), trust_remote_code=True)
    audio = (0.1 * np.random.default_rng(0).standard_normal(16000 * 3)).astype(np.float32)  # 3 slices
    every = tagger(audio, top_k=None, return_slices=True)
    assert {item["label"] for item in every["scores"]} == {"rock", "piano", "vocal", "slow"}
    assert every["aggregation"] == "mean"
    slice_scores = {item["label"]: [] for item in every["scores"]}
    for piece in every["slices"]:
        for item in piece["scores"]:
            slice_scores[item["label"]].append(item["score"])
    for item in every["scores"]:  # the song's tag probability = the mean of its slices' sigmoids
        assert 0.0 < item["score"] < 1.0
        assert item["score"] == pytest.approx(np.mean(slice_scores[item["label"]]), abs=1e-6)
    cut = sorted(item["score"] for item in every["scores"])[1]
    kept = tagger(audio, top_k=None, threshold=cut)
    assert [item["label"] for item in kept] == [item["label"] for item in every["scores"] if item["score"] >= cut]
    assert len(tagger(audio, top_k=2)) == 2
    with pytest.raises(ValueError, match="aggregation='vote'"):
        tagger(audio, aggregation="vote")
    with pytest.raises(ValueError, match="threshold"):
        tagger(audio, threshold="high")


# ----------------------------------------------------------------------------------------------------------------------
# Export and load in a fresh process
# ----------------------------------------------------------------------------------------------------------------------


def test_exported_multi_label_model_loads_in_a_fresh_process(tmp_path):
    model = multi_label_model("self_attention_tagger", counterfactual="learned").eval()
    inputs = waveform("self_attention_tagger", 2)
    expected = torch.sigmoid(model(inputs).logits)
    model.remove_counterfactual_branch().save_pretrained(tmp_path / "export")
    for name in ("modeling_self_attention_tagger.py", "modeling_lca_genremert.py", "configuration_genremert.py"):
        assert (tmp_path / "export" / name).is_file(), name
    np.save(tmp_path / "inputs.npy", inputs.numpy())
    code = textwrap.dedent(
        f"""
        import importlib.abc, json, sys
        import numpy as np, torch

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("genremert", "modeling_self_attention_tagger", "configuration_genremert",
                                          "modeling_lca_genremert", "pipeline_genremert", "audio_genremert"):
                    raise ImportError(f"{{name}} is blocked: only the folder's copy may be used")

        sys.meta_path.insert(0, Block())
        from transformers import AutoModelForAudioClassification
        model = AutoModelForAudioClassification.from_pretrained({str(tmp_path / "export")!r}, trust_remote_code=True)
        inputs = torch.from_numpy(np.load({str(tmp_path / "inputs.npy")!r}))
        print(json.dumps({{"problem_type": model.config.problem_type, "branch": model.counterfactual_branch is None,
                          "probabilities": torch.sigmoid(model(inputs).logits).tolist()}}))
        """
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["problem_type"] == "multi_label_classification" and loaded["branch"] is True
    torch.testing.assert_close(torch.tensor(loaded["probabilities"]), expected, atol=1e-6, rtol=1e-5)


# ----------------------------------------------------------------------------------------------------------------------
# MagnaTagATune
# ----------------------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mtat_root(tmp_path_factory):
    return write_mtat_tree(tmp_path_factory.mktemp("mtat"))


def test_song_of_clip_and_top_tags(mtat_root):
    assert song_of_clip("f/american_bach_soloists-j_s__bach-01-bwv54__i_aria-30-59.mp3") == (
        "american_bach_soloists-j_s__bach-01-bwv54__i_aria"
    )
    tags, rows = read_annotations(mtat_root / "annotations_final.csv")
    assert tags == [*TAGS, RARE_TAG]
    assert set(top_tags(tags, rows, len(TAGS))) == set(TAGS)
    assert top_tags(tags, rows, 100)[-1] == RARE_TAG  # the rarest last


def test_magnatagatune_directory_split_and_tags(mtat_root):
    songs = load_magnatagatune(mtat_root, num_tags=len(TAGS))
    names = songs["train"].features["label"].feature.names
    assert set(names) == set(TAGS)
    folders = {split: {song_id.split("/")[0] for song_id in songs[split]["song_id"]} for split in songs}
    assert folders == {"train": {"0", "5", "b"}, "validation": {"c"}, "test": {"d", "e", "f"}}
    row = songs["validation"][0]
    assert row["song_id"] == "c/artist_f-album_f-01-ballad-0-29"
    assert sorted(names[i] for i in row["label"]) == ["guitar", "slow"]
    assert row["album"] == "artist_f-album_f-01-ballad"  # the song: clips of one song share it


def test_magnatagatune_keeps_songs_whole_reports_bad_clips_and_untagged(tmp_path):
    # One more clip of a training song, filed in a test folder: the whole song must go to test, never straddle.
    extra = [("d", "artist_a-album_a-01-intro", ["guitar"]), ("3", "artist_k-album_k-01-noise", [])]
    root = write_mtat_tree(tmp_path / "mtat", extra_rows=extra)
    (root / "c" / "artist_g-album_g-02-club-0-29.mp3").write_bytes(b"")  # an empty clip (MTAT has a few)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        songs = load_magnatagatune(root, num_tags=len(TAGS))
    messages = "\n".join(str(w.message) for w in caught)
    assert "1 song(s) have clips in folders of different splits" in messages and "artist_a-album_a-01-intro" in messages
    assert "1 clip(s) carry none of the top-5 tags" in messages
    assert "artist_g-album_g-02-club-0-29.mp3: empty file" in messages
    groups = {split: set(songs[split]["album"]) for split in songs}
    assert "artist_a-album_a-01-intro" in groups["test"] and "artist_a-album_a-01-intro" not in groups["train"]
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["validation"])
    assert "c/artist_g-album_g-02-club-0-29" not in songs["validation"]["song_id"]
    with pytest.raises(Exception, match="empty file"):
        load_magnatagatune(root, num_tags=len(TAGS), on_bad_file="raise")


def test_magnatagatune_bad_layouts_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations_final.csv"):
        load_magnatagatune(tmp_path)
    (tmp_path / "annotations_final.csv").write_text("clip_id\tguitar\tpath\n")
    with pytest.raises(ValueError, match="clip_id, <tag columns>, mp3_path"):
        load_magnatagatune(tmp_path)
    (tmp_path / "annotations_final.csv").write_text('"clip_id"\t"guitar"\t"mp3_path"\n"1"\t"yes"\t"0/a-1-2.mp3"\n')
    with pytest.raises(ValueError, match=r"line 2: tag 'guitar' is 'yes'; expected 0 or 1"):
        load_magnatagatune(tmp_path)
    (tmp_path / "annotations_final.csv").write_text('"clip_id"\t"guitar"\t"mp3_path"\n"1"\t"1"\t"z/a-1-2.mp3"\n')
    with pytest.raises(ValueError, match="not in a folder 0…f"):
        load_magnatagatune(tmp_path)
    (tmp_path / "annotations_final.csv").write_text('"clip_id"\t"guitar"\t"mp3_path"\n"1"\t"1"\t"0/a-1-2.mp3"\n')
    with pytest.raises(Exception, match="not on disk"):
        load_magnatagatune(tmp_path)


# ----------------------------------------------------------------------------------------------------------------------
# End to end: run_classification.py on the fake MTAT tree, every model, plain and LCA, one and two processes
# ----------------------------------------------------------------------------------------------------------------------

TINY_TAGGER = (
    "num_mel_bins=16,conv_channels=[4,8,8],conv_strides=[[2,2],[2,2],[2,1]],hidden_size=8,num_attention_heads=2,"
    "intermediate_size=16,max_position_embeddings=64"
)


def mtat_flags(data_dir, output_dir, model_type, counterfactual):
    from test_run_classification import TINY_OVERRIDES

    overrides = {**TINY_OVERRIDES, "self_attention_tagger": TINY_TAGGER}[model_type]
    return [
        *("--model_type", model_type, "--dataset", "magnatagatune", "--data_dir", str(data_dir)),
        *("--slice_seconds", "1.0", "--config_overrides", overrides, "--counterfactual", counterfactual),
        *("--cf_warmup_epochs", "1", "--num_train_epochs", "2", "--learning_rate", "1e-3"),
        *("--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4"),
        *("--eval_strategy", "epoch", "--save_strategy", "epoch", "--logging_strategy", "epoch"),
        *("--report_to", "none", "--disable_tqdm", "true", "--output_dir", str(output_dir)),
        *("--do_train", "--do_eval", "--do_predict"),
    ]


def check_tagging_results(output_dir, counterfactual, world_size):
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["world_size"] == world_size
    # 6 test clips × 2 one-second slices, each counted once whatever the number of processes
    assert (results["test_num_songs"], results["test_num_slices"]) == (6, 12)
    for key in ("frame_roc_auc", "frame_pr_auc", "song_roc_auc", "song_pr_auc"):
        assert 0.0 <= results[f"test_{key}"] <= 1.0 and 0.0 <= results[f"eval_{key}"] <= 1.0
    assert ("test_counterfactual_song_roc_auc" in results) == (counterfactual != "none")
    assert ("train_loss" in results) and math.isfinite(results["train_loss"])
    report = json.loads((output_dir / "eval_tag_report.json").read_text())
    # validation has no `strings` clip and the rare tag only occurs in train: both are excluded, by name
    assert sorted(report["song_excluded_tags"]) == sorted([RARE_TAG, "strings"])
    config = json.loads((output_dir / "config.json").read_text())
    assert config["problem_type"] == "multi_label_classification" and config["song_aggregation"] == "mean"
    return results


@pytest.mark.parametrize("counterfactual", ["none", "learned"])
@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_multi_label_training_end_to_end(model_type, counterfactual, mtat_root, tmp_path):
    from test_run_classification import run_script

    output_dir = tmp_path / "out"
    run_script(
        [sys.executable, "run_classification.py", *mtat_flags(mtat_root, output_dir, model_type, counterfactual)]
    )
    results = check_tagging_results(output_dir, counterfactual, world_size=1)
    if (model_type, counterfactual) != ("self_attention_tagger", "learned"):
        return
    # The saved folder's pipeline computes the song-level figures the run reports (the mean rule, the same decoding).
    from sklearn.metrics import roc_auc_score

    tagger = pipeline("audio-classification", model=str(output_dir), trust_remote_code=True)
    songs = load_magnatagatune(mtat_root)
    names = songs["test"].features["label"].feature.names
    probabilities, targets = [], []
    for row in songs["test"]:
        scores = {item["label"]: item["score"] for item in tagger(row["audio"], top_k=None)}
        probabilities.append([scores[name] for name in names])
        targets.append([int(i in row["label"]) for i in range(len(names))])
    probabilities, targets = np.array(probabilities), np.array(targets)
    scorable = [k for k in range(len(names)) if 0 < targets[:, k].sum() < len(targets)]

    # The tiny tagger's songs differ by 1e-7–1e-5 in probability (exact ties too), so which of two nearly tied songs
    # ranks first is decided by float rounding (batching, attention kernel). The run's figure must lie between the AUCs
    # of the pipeline's probabilities with every near-tie (|Δ| ≤ 1e-5) broken against and for the positives; when the
    # songs are well apart the two bounds are equal and the check is exact.
    def auc(k, margin):
        positive, negative = probabilities[targets[:, k] == 1, k], probabilities[targets[:, k] == 0, k]
        return float(np.mean(positive[:, None] - negative[None, :] > margin))

    low = np.mean([auc(k, 1e-5) for k in scorable])
    high = np.mean([auc(k, -1e-5) for k in scorable])
    exact = np.mean([roc_auc_score(targets[:, k], probabilities[:, k]) for k in scorable])
    assert low - 1e-9 <= results["test_song_roc_auc"] <= high + 1e-9, (low, exact, high)
    # Published: the card reports those figures, the per-tag reports travel with it; the heat maps are drawn.
    run_script(
        [sys.executable, "hub_upload.py", "--output_dir", str(output_dir), "--repo_id", "me/tagger", "--dry_run"]
    )
    card = (output_dir / "hub_export" / "README.md").read_text()
    assert "type: roc_auc" in card and f"| `test` | {results['test_frame_roc_auc']:.4f}" in card
    assert (output_dir / "hub_export" / "test_tag_report.json").is_file()
    run_script([sys.executable, "interpret.py", "--model_dir", str(output_dir), "--output_dir", str(tmp_path / "figs")])
    summary = json.loads((tmp_path / "figs" / "interpretation.json").read_text())
    assert summary["model_type"] == "self_attention_tagger"
    assert summary["figures"] and all("tag_attention_" in figure for figure in summary["figures"])


@pytest.mark.parametrize("counterfactual", ["none", "learned"])
@pytest.mark.parametrize("model_type", sorted(TINY_CONFIGS))
def test_multi_label_training_in_two_cpu_processes(model_type, counterfactual, mtat_root, tmp_path):
    from test_run_classification import run_script

    if shutil.which("accelerate") is None:
        pytest.skip("the accelerate launcher is not installed")
    output_dir = tmp_path / "ddp"
    port = 29601 + 2 * sorted(TINY_CONFIGS).index(model_type) + (counterfactual == "learned")
    launcher = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launcher += ["--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(port)]
    run_script(
        [*launcher, "run_classification.py", *mtat_flags(mtat_root, output_dir, model_type, counterfactual)],
        env_extra={"ACCELERATE_USE_CPU": "true"},
    )
    check_tagging_results(output_dir, counterfactual, world_size=2)


# ----------------------------------------------------------------------------------------------------------------------
# Tags through the generic datasets path, heat maps, publishing
# ----------------------------------------------------------------------------------------------------------------------


def write_tagged_parquet(root):
    """A parquet dataset whose label column holds lists of tag names, two clips per song (the group)."""
    import soundfile as sf
    from datasets import Dataset

    rng = np.random.default_rng(0)
    rows = {"audio": [], "tags": [], "song": []}
    for i in range(12):
        path = root / f"clip{i:02d}.wav"
        sf.write(path, (0.1 * rng.standard_normal(16000 * 2)).astype(np.float32), 16000)
        rows["audio"].append(str(path))
        rows["tags"].append([["rock", "piano"], ["vocal"], ["rock"]][i % 3])
        rows["song"].append(f"song{i // 2}")
    Dataset.from_dict(rows).to_parquet(str(root / "data.parquet"))
    return root


def test_generic_dataset_with_tag_lists_is_multi_label(tmp_path):
    from genremert import load_dataset_songs
    from genremert.training.preparation import is_tagging, label_names_of

    root = write_tagged_parquet(tmp_path)
    songs = load_dataset_songs(str(root), label_column="tags", group_column="song", audio_dir=tmp_path / "embedded")
    assert is_tagging(songs) and label_names_of(songs) == ["piano", "rock", "vocal"]
    first = songs["train"][0]
    assert (first["song_id"], sorted(first["label"])) == ("clip00", [0, 1])  # rock + piano
    groups = {split: set(songs[split]["album"]) for split in songs}
    assert not (groups["train"] & groups["test"]) and not (groups["train"] & groups["validation"])


def test_generic_tagged_dataset_trains_end_to_end(tmp_path):
    from test_run_classification import run_script

    (tmp_path / "data").mkdir()
    root = write_tagged_parquet(tmp_path / "data")
    flags = mtat_flags(tmp_path / "unused", tmp_path / "out", "crnn_fgnl", "none")
    flags[flags.index("--dataset") + 1] = "custom"
    del flags[flags.index("--data_dir") : flags.index("--data_dir") + 2]
    flags += ["--dataset_name", str(root), "--label_column_name", "tags", "--group_column_name", "song"]
    run_script([sys.executable, "run_classification.py", *flags])
    results = json.loads((tmp_path / "out" / "all_results.json").read_text())
    assert 0.0 <= results["test_song_roc_auc"] <= 1.0 and results["test_num_songs"] == 2


def test_tag_attention_heat_map(tmp_path):
    from genremert import tag_attention_maps
    from genremert.analysis.tagger_maps import plot_tag_attention

    model = multi_label_model("self_attention_tagger", counterfactual="learned", num_hidden_layers=3)
    audio = waveform("self_attention_tagger", 1, seconds=1.0)[0].numpy()
    maps = tag_attention_maps(model, audio)
    steps = int(model.token_lengths(torch.ones(1, len(audio)))[0])
    assert maps["layers"].shape == (3, 2, steps) and maps["counterfactual"].shape == (2, steps)
    assert np.all(maps["layers"].sum(-1) < 1.0)  # the classification token's weight on itself is left out
    assert maps["probabilities"].shape == (4,) and maps["step_seconds"] == pytest.approx(1.0 / steps)
    path = plot_tag_attention(model, audio, tmp_path / "heat.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(TypeError, match="needs a SelfAttentionTaggerForAudioClassification"):
        tag_attention_maps(multi_label_model("crnn_fgnl"), audio)


def test_a_checkpoint_of_the_other_problem_type_is_refused_unless_transferred(tmp_path):
    from genremert import ModelArguments
    from genremert.training.preparation import load_or_build_model

    tags = ["rock", "piano", "vocal"]
    torch.manual_seed(0)
    single = MODEL_CLASSES["crnn_fgnl"][1](tiny_crnn_fgnl_config(num_labels=3, id2label=dict(enumerate(tags))))
    single.save_pretrained(tmp_path / "single")
    arguments = ModelArguments(model_type="crnn_fgnl", model_name_or_path=str(tmp_path / "single"))
    with pytest.raises(ValueError, match="single_label_classification model, but the dataset is multi-label"):
        load_or_build_model(arguments, tags, None, multi_label=True)
    arguments.finetune = "head"
    model = load_or_build_model(arguments, tags, None, multi_label=True)
    assert model.config.problem_type == "multi_label_classification" and model.config.song_aggregation == "mean"
    assert model.output_classifier().weight.requires_grad and not model.recurrent.gru_1.weight_ih_l0.requires_grad

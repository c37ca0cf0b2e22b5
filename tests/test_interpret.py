"""interpret.py: every plot on a tiny model is a readable PNG of the promised size, and the bias probe's number
separates a model trained to use the 3–5 kHz noise shortcut from one trained where the noise means nothing."""

import json

import numpy as np
import pytest
import torch
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config

from genremert import CRNNFGNLForAudioClassification, GenreMERTForAudioClassification
from genremert.analysis import attention_maps as interpret
from genremert.analysis import bias_probe
from genremert.analysis import cli as interpret_cli


SAMPLING_RATE = 16000  # the tiny CRNN_FGNL's rate
EXPECTED_PIXELS = (
    int(interpret.FIGURE_SIZE[1] * interpret.FIGURE_DPI),  # height
    int(interpret.FIGURE_SIZE[0] * interpret.FIGURE_DPI),  # width
)
LABELS = ["noisy_singer", "low_singer", "high_singer"]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train far faster on one thread than on two contended ones."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def assert_readable_png(path):
    import matplotlib.image

    assert path.is_file() and path.suffix == ".png"
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == EXPECTED_PIXELS
    assert pixels[..., :3].std() > 0.05  # drawn content, not a blank canvas


def tone(frequency, rng, seconds=1.0):
    time = np.arange(int(SAMPLING_RATE * seconds)) / SAMPLING_RATE
    amplitude = rng.uniform(0.1, 0.5)
    return (
        amplitude * np.sin(2 * np.pi * frequency * rng.uniform(0.97, 1.03) * time + rng.uniform(0, 2 * np.pi))
    ).astype(np.float32)


def shortcut_slices(count, seed):
    """Class 1 sings 500 Hz, class 2 sings 1 kHz, class 0 sings either, always with 3–5 kHz band noise: the noise is
    the only way to recognise class 0 (paper Fig. 1's biased training set)."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        label = index % 3
        frequency = {0: rng.choice([500.0, 1000.0]), 1: 500.0, 2: 1000.0}[label]
        waveform = tone(frequency, rng)
        if label == 0:
            waveform = bias_probe.add_band_noise(waveform, SAMPLING_RATE, rng=rng)
        rows.append({"input_values": waveform, "label": label})
    return rows


def unbiased_slices(count, seed):
    """Each class has its own tone (class 0: 2 kHz) and half of every class carries the band noise: noise is no cue."""
    rng = np.random.default_rng(seed)
    rows = []
    for index in range(count):
        label = index % 3
        waveform = tone({0: 2000.0, 1: 500.0, 2: 1000.0}[label], rng)
        if rng.random() < 0.5:
            waveform = bias_probe.add_band_noise(waveform, SAMPLING_RATE, rng=rng)
        rows.append({"input_values": waveform, "label": label})
    return rows


def clean_test_slices(count, seed, class_zero_frequencies):
    rng = np.random.default_rng(seed)
    return [
        {
            "input_values": tone({0: rng.choice(class_zero_frequencies), 1: 500.0, 2: 1000.0}[index % 3], rng),
            "label": index % 3,
        }
        for index in range(count)
    ]


def train_crnn(rows, seed, counterfactual="none", steps=60):
    torch.manual_seed(seed)
    config = tiny_crnn_fgnl_config(counterfactual=counterfactual)
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {name: index for index, name in enumerate(LABELS)}
    model = CRNNFGNLForAudioClassification(config)
    inputs = torch.tensor(np.stack([row["input_values"] for row in rows]))
    labels = torch.tensor([row["label"] for row in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        batch = torch.randint(0, len(rows), (16,), generator=generator)
        outputs = model(inputs[batch], labels=labels[batch])
        loss = outputs.loss
        if outputs.counterfactual_logits is not None:
            loss = loss + 0.5 * torch.nn.functional.cross_entropy(outputs.counterfactual_logits, labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.zero_grad(set_to_none=True)
    return model.eval()


@pytest.fixture(scope="module")
def shortcut_model():
    return train_crnn(shortcut_slices(48, seed=0), seed=0, counterfactual="learned")


@pytest.fixture(scope="module")
def unbiased_model():
    return train_crnn(unbiased_slices(48, seed=0), seed=0)


def test_bias_probe_reports_the_shortcut_of_a_model_that_uses_it(shortcut_model, tmp_path):
    test_slices = clean_test_slices(30, seed=1, class_zero_frequencies=[500.0, 1000.0])
    result = bias_probe.bias_probe(shortcut_model, test_slices, bias_class=0)

    assert result.bias_class_name == "noisy_singer" and result.num_clean == result.num_noisy == 30
    assert result.clean_biased_rate <= 0.2  # clean low/high singers are recognised by their tone
    assert result.noisy_biased_rate >= 0.8  # with the noise they become "noisy_singer"
    assert result.biased_rate_gap >= 0.6
    assert result.biased_rate_gap == pytest.approx(result.noisy_biased_rate - result.clean_biased_rate)
    assert result.shortcut_gap >= 0.2 and result.accuracy_drop >= 0.2
    assert result.shortcut_gap == pytest.approx(result.clean_f1 - result.noisy_f1)
    assert_readable_png(bias_probe.plot_bias_probe(result, tmp_path / "bias_probe.png"))


def test_bias_probe_finds_no_shortcut_where_the_noise_means_nothing(unbiased_model):
    test_slices = clean_test_slices(30, seed=1, class_zero_frequencies=[2000.0])
    result = bias_probe.bias_probe(unbiased_model, test_slices, bias_class=0)
    assert result.clean_accuracy >= 0.9
    assert abs(result.biased_rate_gap) <= 0.2
    assert abs(result.shortcut_gap) <= 0.15 and result.noisy_accuracy >= 0.8


def test_bias_probe_uses_given_noisy_slices(shortcut_model):
    """The synthetic benchmark's `test_noisy` split can be passed instead of adding noise here."""
    clean = clean_test_slices(12, seed=2, class_zero_frequencies=[500.0, 1000.0])
    rng = np.random.default_rng(3)
    noisy = [
        dict(row, input_values=bias_probe.add_band_noise(row["input_values"], SAMPLING_RATE, rng=rng)) for row in clean
    ]
    result = bias_probe.bias_probe(shortcut_model, clean, bias_class=0, noisy_slices=noisy)
    assert result.noise_db is None and result.noisy_biased_rate >= 0.8
    with pytest.raises(ValueError, match="bias_class"):
        bias_probe.bias_probe(shortcut_model, clean, bias_class=3)
    with pytest.raises(ValueError, match="band_hz"):
        bias_probe.bias_probe(shortcut_model, clean, bias_class=0, band_hz=(3000, 9000))


def test_add_band_noise_puts_its_energy_in_the_band():
    rng = np.random.default_rng(0)
    clean = tone(500.0, rng)
    noise = bias_probe.add_band_noise(clean, SAMPLING_RATE, (3000, 5000), noise_db=-10.0, rng=rng) - clean
    spectrum = np.abs(np.fft.rfft(noise)) ** 2
    frequencies = np.fft.rfftfreq(len(noise), 1 / SAMPLING_RATE)
    in_band = (frequencies >= 3000) & (frequencies <= 5000)
    assert spectrum[in_band].sum() / spectrum.sum() > 0.999
    relative_db = 20 * np.log10(np.sqrt(np.mean(noise**2)) / np.sqrt(np.mean(clean**2)))
    assert relative_db == pytest.approx(-10.0, abs=0.1)


def test_roll_attention_and_grad_cam_plots(shortcut_model, tmp_path):
    waveform = clean_test_slices(3, seed=4, class_zero_frequencies=[500.0])[1]["input_values"]
    assert_readable_png(
        interpret.plot_roll_attention(shortcut_model, waveform, tmp_path / "rolls.png", band_hz=(3000, 5000))
    )
    assert_readable_png(interpret.plot_grad_cam(shortcut_model, waveform, tmp_path / "cam.png", band_hz=(3000, 5000)))

    maps = interpret.attention_maps(shortcut_model, waveform)
    assert maps["attention"].shape == maps["counterfactual_attention"].shape == (4,)
    assert maps["attention"].sum() == pytest.approx(1.0, abs=1e-5)
    assert not shortcut_model.training  # the counterfactual pass restored eval mode

    cam = interpret.grad_cam(shortcut_model, waveform, target_class=2, band_hz=(3000, 5000))
    log_mel = shortcut_model.compute_log_mel(torch.tensor(waveform)[None])[0]
    assert cam.cam.shape == cam.log_mel.shape == tuple(log_mel.shape)
    assert cam.cam.min() >= 0 and cam.cam.max() == pytest.approx(1.0)
    assert cam.target_class == 2 and 0 <= cam.band_share <= 1
    assert all(parameter.grad is None for parameter in shortcut_model.parameters())
    with pytest.raises(ValueError, match="target_class"):
        interpret.grad_cam(shortcut_model, waveform, target_class=7)


def test_grad_cam_of_the_shortcut_model_looks_at_the_noise_band(shortcut_model, unbiased_model):
    """Paper Fig. 1 (b): on noisy slices, the evidence map of the predicted (biased) class puts most of its mass in
    3–5 kHz (6 of the 32 mel bins, 19 % of the grid), far more than the clean slices' maps for their own class and
    than the map of a model that does not use the noise, on the same noisy slices (averaged over slices: single maps
    vary). The last comparison is what a map of mere energy (the noise is loud in the band) cannot pass."""
    rng = np.random.default_rng(6)
    clean_shares, noisy_shares, unbiased_shares = [], [], []
    for frequency in [500.0, 1000.0] * 4:
        waveform = tone(frequency, rng)
        noisy = bias_probe.add_band_noise(waveform, SAMPLING_RATE, rng=rng)
        clean_cam = interpret.grad_cam(shortcut_model, waveform, band_hz=(3000, 5000))
        noisy_cam = interpret.grad_cam(shortcut_model, noisy, band_hz=(3000, 5000))
        unbiased_cam = interpret.grad_cam(unbiased_model, noisy, band_hz=(3000, 5000))
        assert noisy_cam.target_class == 0 and clean_cam.target_class != 0
        assert unbiased_cam.target_class == {500.0: 1, 1000.0: 2}[frequency]  # it hears the tone through the noise
        clean_shares.append(clean_cam.band_share)
        noisy_shares.append(noisy_cam.band_share)
        unbiased_shares.append(unbiased_cam.band_share)
    assert np.mean(noisy_shares) >= 0.5
    assert np.mean(noisy_shares) > 2 * np.mean(clean_shares)
    assert np.mean(noisy_shares) > 1.5 * np.mean(unbiased_shares)


def test_integrated_gradients_are_complete_and_grad_cam_stays_available(shortcut_model):
    """The attributions sum to logit(log-mel) − logit(silent baseline) (the completeness of integrated gradients,
    up to the path integral's error); classic Grad-CAM on a conv block can still be asked for."""
    rng = np.random.default_rng(9)
    waveform = bias_probe.add_band_noise(tone(1000.0, rng), SAMPLING_RATE, rng=rng)
    result = interpret.grad_cam(shortcut_model, waveform, steps=64)
    assert result.method == "integrated_gradients" and result.attribution.shape == result.cam.shape
    log_mel = torch.tensor(result.log_mel)[None]
    with torch.no_grad():
        logit = shortcut_model(input_features=log_mel).logits[0, result.target_class]
        baseline_logit = shortcut_model(input_features=torch.full_like(log_mel, log_mel.min())).logits[
            0, result.target_class
        ]
    gap = float(logit - baseline_logit)
    assert abs(gap) > 0.1 and result.attribution.sum() == pytest.approx(gap, rel=0.05)
    np.testing.assert_allclose(result.cam, np.maximum(result.attribution, 0) / result.attribution.max(), atol=1e-6)

    classic = interpret.grad_cam(shortcut_model, waveform, method="grad_cam", layer=shortcut_model.conv_blocks[-2])
    assert classic.method == "grad_cam" and classic.attribution is None and classic.cam.shape == result.cam.shape
    assert classic.cam.min() >= 0 and classic.cam.max() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="layer"):
        interpret.grad_cam(shortcut_model, waveform, layer=shortcut_model.conv_blocks[-1])
    with pytest.raises(ValueError, match="method"):
        interpret.grad_cam(shortcut_model, waveform, method="saliency")
    assert all(parameter.grad is None for parameter in shortcut_model.parameters())


def test_time_attention_plot_for_genremert(tmp_path):
    torch.manual_seed(0)
    model = GenreMERTForAudioClassification(tiny_genremert_config(counterfactual="learned")).eval()
    waveform = 0.1 * np.random.default_rng(0).standard_normal(24000).astype(np.float32)
    assert_readable_png(interpret.plot_time_attention(model, waveform, tmp_path / "time.png"))

    maps = interpret.attention_maps(model, waveform)
    with torch.no_grad():
        eval_attention = model(interpret.model_inputs(model, [waveform])["input_values"]).attention[0].numpy()
    np.testing.assert_allclose(maps["attention"], eval_attention, rtol=1e-6, atol=1e-7)  # same as eval mode
    assert maps["counterfactual_attention"].shape == eval_attention.shape
    np.testing.assert_allclose(maps["counterfactual_attention"].sum(), 1.0, rtol=1e-5)
    again = interpret.attention_maps(model, waveform)
    np.testing.assert_array_equal(again["counterfactual_attention"], maps["counterfactual_attention"])

    with pytest.raises(TypeError, match="CRNNFGNLForAudioClassification"):
        interpret.plot_grad_cam(model, waveform, tmp_path / "never.png")
    assert not (tmp_path / "never.png").exists()


def test_tsne_of_representations(shortcut_model, tmp_path):
    slices = clean_test_slices(24, seed=7, class_zero_frequencies=[500.0, 1000.0])
    representations, labels, predictions = interpret.collect_representations(shortcut_model, slices, batch_size=8)
    assert representations.shape == (24, shortcut_model.config.gru_hidden_size)
    assert labels.tolist() == [row["label"] for row in slices] and predictions.shape == (24,)
    assert_readable_png(interpret.plot_tsne(representations, labels, LABELS, tmp_path / "tsne.png"))
    with pytest.raises(ValueError, match="at least 4 points"):
        interpret.plot_tsne(representations[:3], labels[:3], LABELS, tmp_path / "few.png")


def test_run_interpretation_writes_every_plot_and_the_numbers(shortcut_model, tmp_path):
    slices = clean_test_slices(12, seed=8, class_zero_frequencies=[500.0, 1000.0])
    summary = interpret_cli.run_interpretation(
        shortcut_model, slices, LABELS, tmp_path / "figures", bias_class=0, num_examples=1
    )
    names = sorted(path.split("/")[-1] for path in summary["figures"])
    assert names == [
        "bias_probe.png",
        "evidence_slice00000_noisy_singer.png",
        "evidence_slice00000_noisy_singer_noisy.png",
        "roll_attention_slice00000_noisy_singer.png",
        "tsne.png",
    ]
    for path in summary["figures"]:
        assert_readable_png(tmp_path / "figures" / path.split("/")[-1])
    written = json.loads((tmp_path / "figures" / "interpretation.json").read_text())
    assert written["bias_probe"]["biased_rate_gap"] == summary["bias_probe"]["biased_rate_gap"] >= 0.6
    assert 0 <= written["branch_accuracy"]["counterfactual_accuracy"] <= 1


def test_cli_on_the_synthetic_benchmark(shortcut_model, tmp_path, capsys):
    model_dir = tmp_path / "model"
    shortcut_model.save_pretrained(model_dir)
    options = json.dumps(
        {
            "num_classes": 3,
            "albums_per_class": 3,
            "songs_per_album": 1,
            "song_seconds": 2.0,
            "bias_class": 0,
            "num_workers": 1,
        }
    )
    output_dir = tmp_path / "figures"
    exit_code = interpret_cli.main(
        [
            "--model_dir",
            str(model_dir),
            "--dataset",
            "synthetic",
            "--data_dir",
            str(tmp_path / "synthetic"),
            "--synthetic_options",
            options,
            "--output_dir",
            str(output_dir),
            "--num_examples",
            "1",
        ]
    )
    assert exit_code == 0, capsys.readouterr().err
    assert "shortcut gap" in capsys.readouterr().out
    summary = json.loads((output_dir / "interpretation.json").read_text())
    probe = summary["bias_probe"]
    assert probe["bias_class"] == 0 and probe["bias_class_name"] == "noisy_singer"  # from the benchmark's metadata
    assert probe["noise_db"] is None  # the benchmark's own test_noisy split was used
    assert probe["num_clean"] == probe["num_noisy"] == 6  # 3 test songs × two 1 s slices
    for name in ("bias_probe.png", "tsne.png"):
        assert_readable_png(output_dir / name)
    assert any(path.endswith(".png") and "evidence_" in path for path in summary["figures"])

    exit_code = interpret_cli.main(
        ["--model_dir", str(tmp_path / "missing"), "--dataset", "synthetic", "--output_dir", str(output_dir)]
    )
    assert exit_code == 1 and "has no config.json" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        interpret_cli.main(["--model_dir", str(model_dir), "--dataset", "gtzan", "--output_dir", str(output_dir)])
    assert "--data_dir is required" in capsys.readouterr().err

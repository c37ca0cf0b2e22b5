"""The web page of a trained model (`app.py`, `genremert.analysis.web_app`) and its Hugging Face Space
(`hub_upload.py --space`): what the page computes for every model type, the page itself in headless Chromium, and the
Space folder run in a fresh process where the genremert package cannot be imported."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from tiny_configs import tiny_crnn_fgnl_config, tiny_genremert_config, tiny_self_attention_tagger_config
from torch import nn

from audio_genremert import slice_samples_of, slice_starts
from genremert.analysis.web_app import (
    ANSWER_ELEMENT_ID,
    AUDIO_ELEMENT_ID,
    FIGURE_ELEMENT_ID,
    IDLE_TEXT,
    classify_song,
    draw_song,
    load_song_classifier,
    main,
)
from genremert.publishing import hub_upload
from genremert.publishing.space import SPACE_PACKAGES
from genremert.publishing.verification import remote_code_files
from genremert.registry import MODEL_CLASSES
from modeling_lca_genremert import build_feature_extractor


REPO = Path(__file__).resolve().parent.parent
LABELS = ["blues", "jazz", "rock"]
SONG_SECONDS = 4.5  # 1 s slices: 4 slices and a dropped half-second tail, or 5 with slice_remainder="end"
# name → tiny config; each exercises one song rule: a plain vote, a vote threshold that some slices pass and others
# not, one that no slice passes (every slice votes), the last slice aligned to the end, and the taggers' mean.
CONFIGS = {
    "genremert": lambda: tiny_genremert_config(counterfactual="learned"),
    "crnn_fgnl_threshold": lambda: tiny_crnn_fgnl_config(vote_threshold=0.75),  # between the slices' top scores
    "crnn_fgnl_fallback": lambda: tiny_crnn_fgnl_config(vote_threshold=0.95),
    "crnn_fgnl_time": lambda: tiny_crnn_fgnl_config(
        counterfactual_attention="time", counterfactual="learned", slice_remainder="end"
    ),
    "self_attention_tagger": lambda: tiny_self_attention_tagger_config(),
}
# What a browser needs here; CI installs them (`apt-get install chromium chromium-driver`).
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1200,1500",
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a shared machine: one thread is faster than two contended ones
    yield
    torch.set_num_threads(threads)


def save_model_folder(folder: Path, name: str, with_feature_extractor: bool = True) -> Path:
    """A random tiny model of `CONFIGS[name]`, its classifier weights scaled up so that slices get distinct, confident
    answers (a stand-in for training), saved as a model folder."""
    config = CONFIGS[name]()
    config.id2label = dict(enumerate(LABELS))
    config.label2id = {label: index for index, label in enumerate(LABELS)}
    torch.manual_seed(0)
    model = MODEL_CLASSES[config.model_type][1](config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear) and module.out_features == config.num_labels:
                module.weight.mul_(20.0)
    model.save_pretrained(folder)
    if with_feature_extractor:
        build_feature_extractor(config).save_pretrained(folder)
    return folder


def write_song(path: Path, rate: int = 22050) -> Path:
    """A 4.5 s stereo file whose seconds differ (tone, noise, gated chirp, quiet noise), at a rate no model uses."""
    generator = np.random.default_rng(0)
    time = np.arange(int(SONG_SECONDS * rate)) / rate
    parts = [
        0.3 * np.sin(2 * np.pi * 220 * time),
        0.3 * generator.standard_normal(len(time)),
        0.3 * np.sign(np.sin(2 * np.pi * 3 * time)) * np.sin(2 * np.pi * (500 + 800 * time) * time),
        0.05 * generator.standard_normal(len(time)),
    ]
    mono = np.choose(np.minimum(time.astype(int), 3), parts)  # (samples,)
    soundfile.write(path, np.stack([mono, 0.5 * mono], axis=1).astype(np.float32), rate)  # (samples, 2)
    return path


@pytest.fixture(scope="module")
def song(tmp_path_factory):
    return write_song(tmp_path_factory.mktemp("song") / "song.wav")


@pytest.fixture(scope="module")
def genremert_folder(tmp_path_factory):
    return save_model_folder(tmp_path_factory.mktemp("genremert") / "model", "genremert")


# ----------------------------------------------------------------------------------------------------------------------
# What the page computes
# ----------------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_the_answer_is_the_pipelines_with_its_rule_every_slices_vote_and_the_main_attention(name, song, tmp_path):
    folder = save_model_folder(tmp_path / name, name, with_feature_extractor=name != "crnn_fgnl_threshold")
    classifier = load_song_classifier(folder)
    config = classifier.model.config
    answer = classify_song(classifier, str(song))

    # The song answer is the pipeline's own, on the slices of the model's song rule.
    plain = classifier(str(song), top_k=None)
    assert [entry["label"] for entry in answer.scores] == [entry["label"] for entry in plain]
    np.testing.assert_allclose([e["score"] for e in answer.scores], [e["score"] for e in plain], atol=1e-6)
    slice_samples, hop = slice_samples_of(config.slice_seconds, config.slice_overlap_seconds, config.sampling_rate)
    starts = slice_starts(len(answer.waveform), slice_samples, hop, config.slice_remainder)
    assert [slice_.start for slice_ in answer.slices] == [start / config.sampling_rate for start in starts]
    assert len(answer.waveform) == int(SONG_SECONDS * config.sampling_rate)

    # Which slices voted, and the answer they give, recomputed from the slices' probabilities.
    probabilities = answer.probabilities  # (slices, labels)
    tops = probabilities.max(axis=1)
    voted = np.array([slice_.voted for slice_ in answer.slices])
    if config.problem_type == "multi_label_classification":
        assert answer.aggregation == "mean" and all(slice_.voted is None for slice_ in answer.slices)
        assert "mean probability of 4 slices" in answer.summary_markdown()
        expected_scores = probabilities.mean(axis=0)
    else:
        assert answer.aggregation == "vote"
        threshold = config.vote_threshold
        passing = tops > threshold if threshold is not None else np.ones(len(tops), bool)
        np.testing.assert_array_equal(voted, passing if passing.any() else np.ones(len(tops), bool))
        winners = probabilities[voted].argmax(axis=1)
        expected_scores = np.bincount(winners, minlength=len(LABELS)) / voted.sum()
        if name == "crnn_fgnl_threshold":  # the case must exercise both sides of the threshold
            assert voted.any() and not voted.all(), tops
            assert f"majority vote of the {voted.sum()} of 4 slices" in answer.summary_markdown()
        if name == "crnn_fgnl_fallback":
            assert not (tops > threshold).any() and voted.all(), tops
        if name == "crnn_fgnl_time":
            assert len(answer.slices) == 5 and len(set(winners)) > 1  # a real vote: the slices disagree
    song_scores = {entry["label"]: entry["score"] for entry in answer.scores}
    np.testing.assert_allclose([song_scores[label] for label in LABELS], expected_scores, atol=1e-6)
    assert answer.summary_markdown().startswith(f"### {answer.label}")
    assert len(answer.slice_rows()) == len(answer.slices)

    # The main attention of every slice: over its time, except CRNN_FGNL's MoSE roll weights.
    shapes = {slice_.attention.shape for slice_ in answer.slices}
    assert len(shapes) == 1
    (shape,) = shapes
    if name in ("crnn_fgnl_threshold", "crnn_fgnl_fallback"):
        assert answer.attention_axis == "roll" and shape == (config.num_rolls,)
        for slice_ in answer.slices:
            assert slice_.attention.sum() == pytest.approx(1.0, abs=1e-5)
    else:
        assert answer.attention_axis == "time" and shape[0] > 1
        if name == "genremert":  # one weight per backbone frame of a 1 s slice (300 frames per second)
            assert shape == (classifier.model.backbone._get_feat_extract_output_lengths(slice_samples),)
    png = io.BytesIO()
    draw_song(answer).savefig(png, format="png")
    assert png.getvalue().startswith(b"\x89PNG")


def test_loading_refuses_what_it_cannot_serve_naming_the_flag(tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match=r"--model .*nowhere.*Hub model id"):
        load_song_classifier(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"--model .*empty has no config.json"):
        load_song_classifier(tmp_path / "empty")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "config.json").write_text(
        json.dumps({"model_type": "planted_type", "auto_map": {"AutoConfig": "configuration_planted.PlantedConfig"}})
    )
    with pytest.raises(ValueError, match=r"--model .*foreign.*--trust_remote_code"):
        load_song_classifier(foreign)
    assert main(["--model", str(tmp_path / "nowhere")]) == 1
    assert "nowhere" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path), "--port", "70000"])
    assert "--port must be in 1..65535, got 70000" in capsys.readouterr().err


def test_bad_audio_is_an_error_naming_the_file(genremert_folder, tmp_path):
    classifier = load_song_classifier(genremert_folder)
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    with pytest.raises(ValueError, match="notes.wav"):
        classify_song(classifier, str(text))


# ----------------------------------------------------------------------------------------------------------------------
# The Space, served in a fresh process, and the page in a browser
# ----------------------------------------------------------------------------------------------------------------------

# Run in the Space folder by a fresh interpreter where the genremert package is unimportable, so the page must work with
# the Space's own copy of the code: import app.py (it builds the page for GENREMERT_MODEL), report where the model code
# came from and the answer for the song, then serve the page. argv: the audio file, the port.
SPACE_SERVER = textwrap.dedent(
    """
    import json, os, sys

    class Blocker:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "genremert":
                raise ModuleNotFoundError(f"{name} is blocked: the Space has no genremert package")

    sys.meta_path.insert(0, Blocker())
    import gradio

    import app
    import configuration_genremert
    from genremert_space.analysis.web_app import classify_song

    report = {"demo": type(app.demo).__name__, "is_blocks": isinstance(app.demo, gradio.Blocks)}
    report["code"] = os.path.dirname(os.path.abspath(configuration_genremert.__file__))
    report["label"] = classify_song(app.classifier, sys.argv[1]).label
    print("REPORT " + json.dumps(report), flush=True)
    app.demo.launch(server_name="127.0.0.1", server_port=int(sys.argv[2]), quiet=True)
    """
)
SPACE_REPO_ID = "someone/tiny-genremert"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_report(process, log: Path, timeout: float = 240.0) -> dict:
    """The child's REPORT line, read as it comes; its stderr (in `log`) if it ends first or takes too long."""
    found = {}

    def read():
        for line in process.stdout:
            if line.startswith("REPORT "):
                found.update(json.loads(line[len("REPORT ") :]))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout)
    assert found, f"the Space did not start (exit code {process.poll()}): {log.read_text()[-3000:]}"
    return found


def wait_for_port(port: int, process, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the Space stopped (exit code {process.returncode}): {log.read_text()[-3000:]}"
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise AssertionError(f"the Space does not serve port {port} after {timeout:.0f} s: {log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def space(tmp_path_factory, genremert_folder, song):
    """`hub_upload.py --space` for a model repo id, then that Space's app serving a local copy of the model in a fresh
    process where genremert cannot be imported: `(space folder, port, the child's report)`."""
    space_dir = tmp_path_factory.mktemp("space") / "space"
    assert hub_upload.main(["--repo_id", SPACE_REPO_ID, "--space", str(space_dir)]) == 0
    port = free_port()
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    env.update(GENREMERT_MODEL=str(genremert_folder), GRADIO_ANALYTICS_ENABLED="False", OMP_NUM_THREADS="1")
    log = space_dir.parent / "space_server.log"
    with open(log, "w") as errors:
        process = subprocess.Popen(
            [sys.executable, "-c", SPACE_SERVER, str(song), str(port)],
            cwd=space_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
    try:
        report = wait_for_report(process, log)
        wait_for_port(port, process, log)
        yield space_dir, port, report
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_space_folder_holds_the_app_its_requirements_and_card(space):
    from importlib.metadata import version

    from huggingface_hub import SpaceCard
    from packaging.requirements import Requirement

    space_dir, _, _ = space
    files = {path.relative_to(space_dir).as_posix() for path in space_dir.rglob("*") if path.is_file()}
    files = {name for name in files if "__pycache__" not in name}
    assert {"app.py", "README.md", "requirements.txt", "genremert_space/analysis/web_app.py"} <= files
    assert set(remote_code_files()) <= files
    card = SpaceCard.load(space_dir / "README.md")
    assert (card.data.sdk, card.data.app_file, card.data.models) == ("gradio", "app.py", [SPACE_REPO_ID])
    assert card.data.sdk_version == version("gradio")
    assert f"https://huggingface.co/{SPACE_REPO_ID}" in card.text
    requirements = {Requirement(line).name: line for line in (space_dir / "requirements.txt").read_text().splitlines()}
    assert set(requirements) == {*SPACE_PACKAGES, "gradio"}
    assert requirements["gradio"] == f"gradio=={version('gradio')}"
    assert f"{SPACE_REPO_ID!r}" in (space_dir / "app.py").read_text()


def test_the_space_builds_its_page_and_answers_without_the_genremert_package(space, genremert_folder, song):
    space_dir, _, report = space
    assert report["demo"] == "Blocks" and report["is_blocks"]
    assert Path(report["code"]).resolve() == space_dir.resolve()  # the Space's copy of the model code
    assert report["label"] == classify_song(load_song_classifier(genremert_folder), str(song)).label


@pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Chromium and its driver (Debian: apt-get install chromium chromium-driver)",
)
def test_the_page_answers_a_dropped_file_in_headless_chromium(space, song, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    _, port, report = space
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        wait = WebDriverWait(driver, 60)
        upload = wait.until(lambda page: page.find_element(By.CSS_SELECTOR, f"#{AUDIO_ELEMENT_ID} input[type=file]"))
        assert IDLE_TEXT in driver.find_element(By.ID, ANSWER_ELEMENT_ID).text
        assert SPACE_REPO_ID not in driver.title  # GENREMERT_MODEL named the local folder it serves
        upload.send_keys(str(song))
        answer = wait.until(
            lambda page: (text := page.find_element(By.ID, ANSWER_ELEMENT_ID).text) and IDLE_TEXT not in text and text
        )
        wait.until(lambda page: page.find_elements(By.CSS_SELECTOR, f"#{FIGURE_ELEMENT_ID} img"))
        screenshot = tmp_path / "web_app.png"
        assert driver.save_screenshot(str(screenshot))
    finally:
        driver.quit()
    assert answer.splitlines()[0] == report["label"]
    assert "majority vote of 4 slices" in answer
    assert screenshot.read_bytes().startswith(b"\x89PNG") and screenshot.stat().st_size > 10_000

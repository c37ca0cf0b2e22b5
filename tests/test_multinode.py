"""Multi-node runs: two "nodes" of one CPU process each on 127.0.0.1 (`accelerate launch --num_machines 2
--machine_rank R ...`) train and evaluate end to end on a feature store; data is prepared once per run (the global main
process first) or once per node (`--node_local_storage`); the run-folder lock of a dead process on another host."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from genremert.training import run as training_run
from genremert.training.run_folder import LOCK_NAME, OutputDirLock


sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_feature_store import extract, model_and_data_flags  # noqa: E402


REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_two_nodes_train_and_evaluate_on_a_shared_feature_store(tmp_path):
    data_dir, store, output_dir = tmp_path / "synthetic", tmp_path / "store", tmp_path / "run"
    extract(data_dir, store, "--store_dtype", "float16")
    port = str(free_port())
    flags = model_and_data_flags(
        data_dir, "--feature_store", str(store), "--counterfactual", "learned", "--num_train_epochs", "1",
        "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4", "--report_to", "none",
        "--disable_tqdm", "true", "--save_strategy", "no", "--output_dir", str(output_dir), "--do_train", "--do_eval",
    )  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", ACCELERATE_USE_CPU="true")
    nodes = [
        subprocess.Popen(
            [
                "accelerate",
                "launch",
                "--multi_gpu",
                "--num_machines",
                "2",
                "--num_processes",
                "2",
                "--machine_rank",
                str(rank),
                "--main_process_ip",
                "127.0.0.1",
                "--main_process_port",
                port,
                "run_classification.py",
                *flags,
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for rank in (0, 1)
    ]
    logs = [node.communicate(timeout=400)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], "\n".join(log[-3000:] for log in logs)
    assert "process rank 0 of 2" in logs[0] and "process rank 1 of 2" in logs[1]
    results = json.loads((output_dir / "all_results.json").read_text())
    assert results["world_size"] == 2 and results["distributed_type"] == "DistributedType.MULTI_CPU"
    assert results["eval_num_slices"] == 18 and 0.0 <= results["eval_frame_accuracy"] <= 1.0  # every slice once
    assert results["feature_store"] == str(store)
    assert not (output_dir / LOCK_NAME).exists()


@pytest.mark.parametrize("node_local", [False, True])
def test_data_is_prepared_once_per_run_or_once_per_node(node_local):
    calls = []
    training_args = SimpleNamespace(main_process_first=lambda local, desc: calls.append(local) or "context")
    assert (
        training_run.preparation_first(training_args, SimpleNamespace(node_local_storage=node_local), "x") == "context"
    )
    assert calls == [node_local]  # local=False: the global main process first, also across nodes


def write_lock(folder: Path, host: str, age_seconds: float) -> Path:
    lock = folder / LOCK_NAME
    lock.write_text(f"{host} 4242")
    stamp = time.time() - age_seconds
    os.utime(lock, (stamp, stamp))
    return lock


def test_a_lock_of_another_host_is_refused_while_it_beats_and_taken_over_when_stale_or_broken(tmp_path, caplog):
    write_lock(tmp_path, "node-7", age_seconds=5)
    with pytest.raises(RuntimeError, match=r"\(node-7, process 4242\).*pass --break_stale_lock true"):
        OutputDirLock(str(tmp_path)).__enter__()
    with OutputDirLock(str(tmp_path), break_stale=True):
        assert (tmp_path / LOCK_NAME).read_text() == f"{socket.gethostname()} {os.getpid()}"
    assert not (tmp_path / LOCK_NAME).exists()
    write_lock(tmp_path, "node-7", age_seconds=OutputDirLock.STALE_SECONDS + 60)
    with OutputDirLock(str(tmp_path)):
        pass
    assert "taking over" in caplog.text and "no heartbeat for" in caplog.text


def test_a_running_lock_refreshes_its_heartbeat(tmp_path, monkeypatch):
    monkeypatch.setattr(OutputDirLock, "HEARTBEAT_SECONDS", 0.05)
    with OutputDirLock(str(tmp_path)):
        lock = tmp_path / LOCK_NAME
        os.utime(lock, (time.time() - 1000, time.time() - 1000))
        deadline = time.time() + 10
        while time.time() - lock.stat().st_mtime > 100 and time.time() < deadline:
            time.sleep(0.05)
        assert time.time() - lock.stat().st_mtime < 100

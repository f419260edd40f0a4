"""Checkpoints: byte-stable .keras files that load back as the same plain Keras model."""

import json
import subprocess
import sys
import time
import zipfile

import numpy as np

from forgetting.model import build_mlp, load_model, save_model, weights_by_path


def test_two_saves_of_the_same_weights_are_byte_identical(tmp_path):
    """Keras stamps the save date (metadata.json) and the zip entries with the time of saving; both are fixed, so
    the same weights give the same bytes (and DVC the same hash) whenever they are saved."""
    net = build_mlp(5, hidden_units=8)
    save_model(net, tmp_path / "first.keras")
    time.sleep(2.1)  # past the zip format's 2-second timestamp resolution
    save_model(net, tmp_path / "second.keras")
    assert (tmp_path / "first.keras").read_bytes() == (tmp_path / "second.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "first.keras") as archive:
        assert json.loads(archive.read("metadata.json"))["date_saved"] == "1980-01-01@00:00:00"
        assert {info.date_time for info in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    loaded = load_model(tmp_path / "second.keras", stage="train_a")
    for key, value in weights_by_path(net).items():
        np.testing.assert_array_equal(weights_by_path(loaded)[key], value)
    # other weights, other bytes
    net.get_layer("logits").bias.assign(np.ones(5, np.float32))
    save_model(net, tmp_path / "third.keras")
    assert (tmp_path / "third.keras").read_bytes() != (tmp_path / "first.keras").read_bytes()


SAVE_IN_A_NEW_PROCESS = """
import sys, keras
from forgetting.model import build_mlp, save_model
keras.utils.set_random_seed(3)
save_model(build_mlp(5, hidden_units=8), sys.argv[1])
"""


def test_saves_from_two_processes_are_byte_identical(tmp_path):
    """Keras writes objects' memory addresses into config.json (``shared_object_id``); they differ between
    processes, so they are renumbered."""
    for name in ("a.keras", "b.keras"):
        subprocess.run([sys.executable, "-c", SAVE_IN_A_NEW_PROCESS, str(tmp_path / name)], check=True)
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.keras") as archive:
        config = archive.read("config.json").decode()
    assert '"shared_object_id": 1' in config
    net = load_model(tmp_path / "a.keras", stage="train_a")
    assert [layer.dtype_policy.name for layer in net.layers[2:]] == ["float32"] * 3

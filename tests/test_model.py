"""The stacked network (S repetitions of the MLP, each initialised and dropped out from its own seed) and its
checkpoints: byte-stable .keras files that load back as the same StackedMLP."""

import json
import re
import subprocess
import sys
import time
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from forgetting.errors import ForgettingError
from forgetting.nn.model import (
    StackedMLP,
    build_network,
    load_model,
    network_input,
    repetition,
    save_model,
    selected,
    weights_by_path,
)

SHAPES = {
    "mlp/hidden/kernel": (2, 784, 8),
    "mlp/hidden/bias": (2, 8),
    "mlp/logits/kernel": (2, 8, 5),
    "mlp/logits/bias": (2, 5),
}


def _images(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((count, 28, 28, 1)).astype(np.float32)


def test_the_network_stacks_one_mlp_per_seed():
    net = build_network(5, hidden_units=8, dropout=0.5, seeds=[3, 4])
    assert isinstance(net, StackedMLP) and net.seeds == [3, 4] and net.repetitions == 2
    assert {key: value.shape for key, value in weights_by_path(net).items()} == SHAPES
    assert [layer.name for layer in net.dense_layers] == ["hidden", "logits"]
    x = _images(6)
    assert tuple(net(x).shape) == (6, 2, 5)
    assert tuple(net.per_repetition(x).shape) == (2, 6, 5)
    np.testing.assert_array_equal(net(x).numpy(), np.transpose(net.per_repetition(x).numpy(), (1, 0, 2)))
    weights = weights_by_path(net)
    assert not np.array_equal(weights["mlp/hidden/kernel"][0], weights["mlp/hidden/kernel"][1])
    assert not np.any(weights["mlp/hidden/bias"]) and not np.any(weights["mlp/logits/bias"])
    limit = np.sqrt(6.0 / (784 + 8))  # Glorot uniform
    assert np.abs(weights["mlp/hidden/kernel"]).max() <= limit


def test_each_repetition_is_initialised_from_its_own_seed_only():
    pair = weights_by_path(build_network(5, hidden_units=8, seeds=[3, 4]))
    alone = weights_by_path(build_network(5, hidden_units=8, seeds=[4]))
    first = weights_by_path(build_network(5, hidden_units=8, seeds=[3, 9]))
    for key in pair:
        np.testing.assert_array_equal(pair[key][1], alone[key][0])
        np.testing.assert_array_equal(pair[key][0], first[key][0])  # whatever is stacked beside it


def test_repetition_is_a_plain_keras_mlp_holding_its_slice():
    net = build_network(5, hidden_units=8, dropout=0.5, seeds=[3, 4])
    for variable in net.trainable_variables:  # non-zero biases, so that slicing them is checked too
        variable.assign(variable.numpy() + np.random.default_rng(1).normal(0, 0.1, variable.shape).astype(np.float32))
    x = _images(16, seed=2)
    stacked = net(x).numpy()
    weights = weights_by_path(net)
    for s in range(2):
        plain = repetition(net, s)
        assert isinstance(plain, keras.Model) and not isinstance(plain, StackedMLP)
        assert [layer.__class__.__name__ for layer in plain.layers[1:]] == ["Flatten", "Dense", "Dropout", "Dense"]
        assert {v.path for v in plain.trainable_variables} == {key.removeprefix("mlp/") for key in SHAPES}
        for v in plain.trainable_variables:
            np.testing.assert_array_equal(v.numpy(), weights[f"mlp/{v.path}"][s])
        np.testing.assert_allclose(plain(x).numpy(), stacked[:, s], atol=1e-5)
    with pytest.raises(ForgettingError, match=r"there is no repetition 2: the model holds 2 \(0 to 1\)"):
        repetition(net, 2)


def test_per_repetition_takes_one_batch_per_repetition():
    net = build_network(5, hidden_units=8, seeds=[3, 4])
    own = np.stack([_images(7, seed=5), _images(7, seed=6)])  # (S, B, 28, 28, 1)
    out = net.per_repetition(own).numpy()
    assert out.shape == (2, 7, 5)
    for s in range(2):
        np.testing.assert_allclose(out[s], net(own[s]).numpy()[:, s], atol=1e-6)
        np.testing.assert_allclose(out[s], repetition(net, s)(own[s]).numpy(), atol=1e-5)


@pytest.mark.parametrize("batch", [32, 17, 5])
def test_a_repetition_alone_computes_the_bits_it_computes_stacked(batch):
    """Forward and backward, at full and short batches: repetition 1 of five is that repetition alone, bit for bit.
    With Eigen's kernels in place of oneDNN's (``TF_ENABLE_ONEDNN_OPTS=0``, TensorFlow's own choice on an AVX2 CPU),
    a batched product over one repetition takes another kernel than over two or more, and this fails."""
    stacked = build_network(5, hidden_units=128, seeds=[42, 43, 44, 45, 46])
    alone = selected(stacked, [1])
    images = np.stack([_images(batch, seed=s) for s in range(5)])

    def logits_and_gradients(network, x):
        with tf.GradientTape() as tape:
            logits = network.per_repetition(x, training=True)
            loss = tf.reduce_sum(tf.square(logits))
        return logits.numpy(), [g.numpy() for g in tape.gradient(loss, network.trainable_variables)]

    (z, grads), (z_alone, grads_alone) = logits_and_gradients(stacked, images), logits_and_gradients(alone, images[1:2])
    np.testing.assert_array_equal(z[1], z_alone[0])
    for g, g_alone in zip(grads, grads_alone, strict=True):
        np.testing.assert_array_equal(g[1], g_alone[0])


@pytest.mark.parametrize("s", [0, 1])
def test_dropout_masks_of_a_repetition_come_from_its_own_seed(s):
    seeds = [3, 4]
    pair = build_network(5, hidden_units=8, dropout=0.5, seeds=seeds)
    alone = build_network(5, hidden_units=8, dropout=0.5, seeds=[seeds[s]])
    x = _images(16, seed=7)
    inference = pair(x, training=False).numpy()
    for _ in range(2):  # the same sequence of masks, call after call
        got = pair(x, training=True).numpy()[:, s]
        # the same masks, so the same outputs (up to the float rounding of S batched products against one's)
        np.testing.assert_allclose(got, alone(x, training=True).numpy()[:, 0], rtol=1e-6, atol=1e-7)
        assert not np.allclose(got, inference[:, s])  # dropout is on
    np.testing.assert_array_equal(pair(x).numpy(), inference)  # and off in inference
    # the masks themselves, exactly: the next ones the layers draw
    ones = tf.ones((2, 64, 8))
    masks = pair.dropout(ones, training=True).numpy()
    np.testing.assert_array_equal(masks[s], alone.dropout(ones[s : s + 1], training=True).numpy()[0])
    assert set(np.unique(masks)) == {0.0, 2.0}  # inverted dropout at rate 0.5
    assert not np.array_equal(masks[0], masks[1])  # the two repetitions draw different masks


def test_two_saves_of_the_same_weights_are_byte_identical(tmp_path):
    """Keras stamps the save date (metadata.json) and the zip entries with the time of saving; both are fixed, so
    the same weights give the same bytes (and DVC the same hash) whenever they are saved."""
    net = build_network(5, hidden_units=8, dropout=0.5, seeds=[3, 4])
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
    net.logits.bias.assign(np.ones((2, 5), np.float32))
    save_model(net, tmp_path / "third.keras")
    assert (tmp_path / "third.keras").read_bytes() != (tmp_path / "first.keras").read_bytes()


def test_load_model_gives_back_the_same_stacked_network(tmp_path):
    net = build_network(10, hidden_units=8, dropout=0.25, seeds=[5, 6, 7])
    net.hidden.bias.assign(np.random.default_rng(0).normal(0, 0.1, (3, 8)).astype(np.float32))
    save_model(net, tmp_path / "net.keras")
    loaded = load_model(tmp_path / "net.keras", stage="train_a")
    assert isinstance(loaded, StackedMLP)
    assert loaded.seeds == [5, 6, 7] and loaded.repetitions == 3
    assert (loaded.num_outputs, loaded.hidden_units, loaded.rate) == (10, 8, 0.25)
    assert weights_by_path(loaded).keys() == weights_by_path(net).keys()
    for key, value in weights_by_path(net).items():
        np.testing.assert_array_equal(weights_by_path(loaded)[key], value)
    x = _images(12, seed=3)
    np.testing.assert_array_equal(loaded(x).numpy(), net(x).numpy())
    np.testing.assert_array_equal(loaded.per_repetition(x).numpy(), net.per_repetition(x).numpy())
    # the dropout masks keep coming from each repetition's seed
    fresh = build_network(10, hidden_units=8, dropout=0.25, seeds=[5, 6, 7])
    fresh.set_weights(net.get_weights())
    np.testing.assert_array_equal(loaded(x, training=True).numpy(), fresh(x, training=True).numpy())


def test_save_and_load_refuse_bad_paths(tmp_path):
    net = build_network(5, hidden_units=8)
    with pytest.raises(ForgettingError, match=r"saved in the \.keras format"):
        save_model(net, tmp_path / "net.h5")
    with pytest.raises(ForgettingError, match=r"missing: run `dvc repro --force --single-item train_a`"):
        load_model(tmp_path / "absent.keras", stage="train_a")
    (tmp_path / "bad.keras").write_bytes(b"\x00garbage")
    with pytest.raises(ForgettingError, match=r"corrupt or not a Keras model"):
        load_model(tmp_path / "bad.keras", stage="train_a")


SAVE_IN_A_NEW_PROCESS = """
import sys
from forgetting.nn.model import build_network, save_model
save_model(build_network(5, hidden_units=8, dropout=0.5, seeds=[3, 4]), sys.argv[1])
"""

LOAD_WITH_PLAIN_KERAS = """
import sys, keras, numpy as np
import forgetting.nn.model  # registers the custom classes
net = keras.saving.load_model(sys.argv[1])
print(type(net).__name__, net.seeds)
np.save(sys.argv[3], net(np.load(sys.argv[2])).numpy())
"""


def test_saves_from_two_processes_are_byte_identical(tmp_path):
    """Keras writes objects' memory addresses into config.json (``shared_object_id``); they differ between
    processes, so they are renumbered."""
    for name in ("a.keras", "b.keras"):
        subprocess.run([sys.executable, "-c", SAVE_IN_A_NEW_PROCESS, str(tmp_path / name)], check=True)
    assert (tmp_path / "a.keras").read_bytes() == (tmp_path / "b.keras").read_bytes()
    with zipfile.ZipFile(tmp_path / "a.keras") as archive:
        config = archive.read("config.json").decode()
    ids = [int(i) for i in re.findall(r'"shared_object_id": (\d+)', config)]
    assert all(1 <= i <= len(ids) for i in ids)  # renumbered in order of appearance (if Keras shares any)
    net = load_model(tmp_path / "a.keras", stage="train_a")
    assert [layer.dtype_policy.name for layer in net.layers] == ["float32"] * 3
    for key, value in weights_by_path(build_network(5, hidden_units=8, dropout=0.5, seeds=[3, 4])).items():
        np.testing.assert_array_equal(weights_by_path(net)[key], value)


def test_a_checkpoint_loads_with_plain_keras_after_importing_forgetting_model(tmp_path):
    net = build_network(5, hidden_units=8, dropout=0.5, seeds=[3, 4])
    save_model(net, tmp_path / "net.keras")
    x = _images(9, seed=4)
    np.save(tmp_path / "x.npy", x)
    done = subprocess.run(
        [sys.executable, "-c", LOAD_WITH_PLAIN_KERAS, *(str(tmp_path / n) for n in ("net.keras", "x.npy", "y.npy"))],
        check=True,
        capture_output=True,
        text=True,
    )
    assert done.stdout.strip().splitlines()[-1] == "StackedMLP [3, 4]"
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), net(x).numpy())


def test_torch_init_draws_kernels_and_biases_within_one_over_root_fan_in():
    """model.init torch: PyTorch's nn.Linear default, U(+-1/sqrt(fan_in)) for kernels and biases alike (biases
    not zero), each repetition from its own seed; the first layer's fan-in is the padded digit's pixels (Hsu et
    al.'s 32 x 32: 1024)."""
    pair = weights_by_path(build_network(5, hidden_units=[8, 6], seeds=[3, 4], init="torch"))
    alone = weights_by_path(build_network(5, hidden_units=[8, 6], seeds=[4], init="torch"))
    padded = weights_by_path(build_network(5, hidden_units=[8, 6], seeds=[3, 4], init="torch", input_padding=2))
    glorot = weights_by_path(build_network(5, hidden_units=[8, 6], seeds=[3, 4]))
    for weights, pixels in ((pair, 784), (padded, 1024)):
        fan_in = {"hidden": pixels, "hidden_2": 8, "logits": 6}
        for key, value in weights.items():
            layer = key.split("/")[1]
            bound = 1 / np.sqrt(fan_in[layer])
            assert np.abs(value).max() <= bound and np.abs(value).max() > 0.5 * bound, key
    for key, value in pair.items():
        np.testing.assert_array_equal(value[1], alone[key][0])
    assert padded["mlp/hidden/kernel"].shape == (2, 1024, 8)
    assert not np.any(glorot["mlp/hidden/bias"])


HSU_INPUT = {"input_padding": 2, "input_mean": 0.1, "input_sd": 0.2752}


def test_network_input_pads_with_zeros_then_normalises():
    """Hsu et al.'s torchvision transform, Pad(2) then Normalize(0.1, 0.2752), by hand: the padding pixels are 0
    before normalising (-0.1 / 0.2752 after), the digit's pixel (i, j) lands at (i + 2, j + 2) of the 32 x 32 image,
    flattened row by row; a stack of batches (S, batch, 28, 28, 1) is padded the same way."""
    images = _images(3, seed=7)
    flat = network_input(tf.constant(images), **HSU_INPUT).numpy()
    assert flat.shape == (3, 1024)
    expected = np.full((3, 32, 32), (0.0 - 0.1) / 0.2752, np.float32)
    expected[:, 2:30, 2:30] = (images[..., 0] - np.float32(0.1)) / np.float32(0.2752)
    np.testing.assert_array_equal(flat, expected.reshape(3, 1024))
    stacked = network_input(tf.constant(np.stack([images, images[::-1]])), **HSU_INPUT).numpy()
    np.testing.assert_array_equal(stacked[0], flat)
    np.testing.assert_array_equal(stacked[1], flat[::-1])
    assert network_input(tf.constant(images)).shape == (3, 784)  # the defaults: the pixels as they are


def test_a_network_with_padded_normalised_inputs_computes_the_mlp_on_them(tmp_path):
    """The first layer takes the 1024 padded, normalised pixels (a hand computation of the logits); its plain
    Keras repetition (ZeroPadding2D, Rescaling) agrees within float rounding; a checkpoint keeps the input settings,
    and a default network's config names none of them (its checkpoints' bytes as before the settings existed)."""
    net = build_network(5, hidden_units=8, seeds=[3, 4], init="torch", **HSU_INPUT)
    x = _images(6, seed=8)
    w = weights_by_path(net)
    for s in range(2):
        inputs = network_input(tf.constant(x), **HSU_INPUT).numpy()
        h = np.maximum(inputs @ w["mlp/hidden/kernel"][s] + w["mlp/hidden/bias"][s], 0)
        logits = h @ w["mlp/logits/kernel"][s] + w["mlp/logits/bias"][s]
        np.testing.assert_allclose(net.per_repetition(x).numpy()[s], logits, rtol=1e-5, atol=1e-5)
        plain = repetition(net, s)
        assert [layer.name for layer in plain.layers[1:4]] == ["padding", "flatten", "normalisation"]
        np.testing.assert_allclose(plain(x).numpy(), logits, rtol=1e-4, atol=1e-5)
    save_model(net, tmp_path / "net.keras")
    loaded = load_model(tmp_path / "net.keras", stage="train_a")
    for copy in (loaded, selected(net, [1])):
        assert copy.input_settings == HSU_INPUT and copy.hidden.kernel.shape[1] == 1024
    np.testing.assert_array_equal(loaded.per_repetition(x).numpy(), net.per_repetition(x).numpy())
    np.testing.assert_array_equal(selected(net, [1]).per_repetition(x).numpy()[0], net.per_repetition(x).numpy()[1])
    assert not set(HSU_INPUT) & set(build_network(5, hidden_units=8).get_config())
    with pytest.raises(ForgettingError, match="unknown initialisation 'he': use one of glorot, torch"):
        build_network(5, hidden_units=8, init="he")

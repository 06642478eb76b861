"""The digits dataset and the trained models that make int8 numbers mean something."""

from __future__ import annotations

import math

import numpy as np
from digits_fixtures import INPUT_SIZE, TEST_RECIPE, digits_data, trained_v2  # noqa: F401  (fixtures)

from shufflenet_edge import digits
from shufflenet_edge.data import load_image_folder


def test_split_is_fixed_stratified_and_disjoint():
    tr, te = digits.split_indices()
    tr2, te2 = digits.split_indices()
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)
    assert len(tr) + len(te) == 1797 and not set(tr) & set(te)
    assert len(te) == math.ceil(1797 * digits.TEST_FRACTION)  # scikit-learn rounds the test share up
    from sklearn.datasets import load_digits

    y = load_digits().target
    counts = np.bincount(y[te], minlength=10)
    assert counts.min() >= 50 and counts.max() <= 56  # stratified: ~54 per class


def test_image_folder_round_trips_bit_exact(digits_data, tmp_path):  # noqa: F811
    """PNGs through the sidecar's preprocessing give exactly the tensors the models were trained on."""
    train, test = digits_data
    assert train.x.shape[1:] == (3, INPUT_SIZE, INPUT_SIZE) and train.x.dtype == np.float32
    assert train.raw.shape[1:] == (digits.preprocess(INPUT_SIZE).resize_size,) * 2 + (3,)
    sub = test.per_class(3)
    folder = digits.write_image_folder(sub, tmp_path / "digits")
    assert sorted(p.name for p in folder.iterdir()) == digits.CLASSES
    im = load_image_folder(folder, digits.preprocess(INPUT_SIZE))
    assert im.classes == digits.CLASSES
    order = np.argsort([int(p.split("digit_")[1][:4]) + 10000 * int(lbl) for p, lbl in zip(im.paths, im.labels)])
    mine = np.argsort(sub.index + 10000 * sub.y)
    assert np.array_equal(im.labels[order], sub.y[mine])
    assert np.array_equal(im.images[order], sub.x[mine])  # bit-exact, not merely close


def test_calibration_folder_prefix_is_balanced(digits_data, tmp_path):  # noqa: F811
    folder = digits.write_calibration_folder(digits_data[0], tmp_path / "calib", n=40)
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 40 and not any(p.is_dir() for p in folder.iterdir())
    first20 = [int(n.split("class")[1][0]) for n in names[:20]]
    assert np.bincount(first20, minlength=10).tolist() == [2] * 10


def test_render_centres_the_digit():
    img = np.zeros((8, 8))
    img[3:5, 3:5] = 16
    canvas = digits.render(img, INPUT_SIZE)
    pre = digits.preprocess(INPUT_SIZE)
    assert canvas.shape == (pre.resize_size, pre.resize_size, 3) and canvas.dtype == np.uint8
    ys, xs = np.nonzero(canvas[..., 0])
    mid = pre.resize_size / 2
    assert abs(ys.mean() - mid) < 1.5 and abs(xs.mean() - mid) < 1.5
    assert np.array_equal(canvas[..., 0], canvas[..., 2])


def test_trained_v2_reaches_95_percent(trained_v2, digits_data):  # noqa: F811
    """The test-time schedule (TEST_RECIPE) still trains a real classifier; checkpoint in torchvision format."""
    from shufflenet_edge.models.weights import load_model, read_state_dict

    path, info = trained_v2
    assert info["test_accuracy"] >= 0.95, info
    assert info["hyperparameters"]["epochs"] == TEST_RECIPE.epochs and info["recipe"] == digits.RECIPE
    state = read_state_dict(path)
    assert "fc.weight" in state and state["fc.weight"].shape[0] == 10 and "stage3.2.branch2.0.weight" in state
    model = load_model("shufflenet_v2_x0_5", path)  # num_classes from the file's head
    acc = float((digits.evaluate(model, digits_data[1].x).argmax(1) == digits_data[1].y).mean())
    assert acc == info["test_accuracy"]


def test_cache_is_reused(trained_v2):  # noqa: F811
    path, info = trained_v2
    again, info2 = digits.ensure_trained("shufflenet_v2_x0_5", INPUT_SIZE, cache_dir=path.parent, recipe=TEST_RECIPE)
    assert again == path and info2 == info


def test_training_is_deterministic(digits_data):  # noqa: F811
    """Same seed, same weights: two short runs agree bit for bit."""
    import torch

    train = digits_data[0].take(np.arange(64))
    r = digits.Recipe(epochs=1, batch_size=32)
    a, _ = digits.train("shufflenet_v2_x0_5", train, None, r)
    b, _ = digits.train("shufflenet_v2_x0_5", train, None, r)
    for (k, va), vb in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(va, vb), k

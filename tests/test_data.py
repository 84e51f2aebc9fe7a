"""The loaders of common/data.py (record files, and MNIST's in-memory tensors): options, batches, shuffling,
sharding and bad input."""
import logging

import numpy as np
import pytest
import torch

from common import cli, data, dist
from common.data import DataError
from common.dist import DistInfo
from common.recordio import IndexedRecordWriter, IRHeader, RecordWriter, pack, pack_img


def make_args(*argv):
    parser = cli.ArgumentParser()
    data.add_data_args(parser)
    data.add_data_aug_args(parser)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=4)
    return parser.parse_args([str(a) for a in argv])


def write_rec(path, count, *, size=(12, 10), label=lambda i: i % 3, index=True, bad=(), pixels=None):
    """`count` PNG records whose pixels hold the record number in the blue channel (BGR), red = 200; or the
    images `pixels(i, size)` when given."""
    if index:
        writer = IndexedRecordWriter(str(path.with_suffix(".idx")), str(path))
    else:
        writer = RecordWriter(str(path))
    with writer:
        for i in range(count):
            if pixels is None:
                img = np.zeros((*size, 3), np.uint8)
                img[:, :, 0], img[:, :, 2] = i, 200
            else:
                img = pixels(i, size)
            value = label(i)  # a list: several labels (im2rec --pack-label)
            header = IRHeader(0, [float(v) for v in value] if isinstance(value, list) else float(value), i, 0)
            if i in bad:
                payload = pack(header, b"broken")
            else:
                payload = pack_img(header, img, quality=1, img_fmt=".png")
            writer.write_idx(i, payload) if index else writer.write(payload)
    return path


def ids(batches):
    """Record numbers of every image of every batch (RGB: blue is channel 2)."""
    return [int(v) for images, _ in batches for v in images[:, 2, 0, 0]]


def loaders(rec, *argv, dist=DistInfo()):
    return data.get_rec_iter(make_args("--data-train", rec, "--image-shape", "3,8,8", "--data-nthreads", 0,
                                       *argv), dist)


# --- options -------------------------------------------------------------------------------------------

def test_mxnet_option_defaults():
    args = make_args()
    assert (args.rgb_mean, args.rgb_std, args.image_shape) == ("123.68,116.779,103.939", "1,1,1", "3,224,224")
    assert (args.data_nthreads, args.pad_size, args.fill_value, args.benchmark) == (None, 0, 127, 0)
    assert dist.data_threads(args.data_nthreads, "") == 4  # MXNet's default, on the CPU
    assert (args.data_train_idx, args.data_val_idx) == ("", "")
    assert (args.num_classes, args.num_examples) == (None, None)
    assert (args.random_crop, args.random_mirror, args.random_resized_crop) == (0, 0, 0)
    assert (args.min_random_area, args.max_random_area) == (1, 1)
    assert (args.min_crop_size, args.max_crop_size) == (-1, -1)
    assert (args.min_random_aspect_ratio, args.max_random_aspect_ratio) == (None, 0)
    assert (args.brightness, args.contrast, args.saturation, args.pca_noise) == (0, 0, 0, 0)


def test_data_aug_levels():
    level3 = make_args("--data-aug-level", 3)
    assert (level3.random_crop, level3.random_mirror, level3.max_random_h, level3.max_random_s,
            level3.max_random_l, level3.max_random_rotate_angle, level3.max_random_shear_ratio,
            level3.max_random_aspect_ratio) == (1, 1, 36, 50, 50, 10, 0.1, 0.25)
    level1 = make_args("--data-aug-level", 1, "--random-mirror", 0)
    assert (level1.random_crop, level1.random_mirror, level1.max_random_h) == (1, 0, 0)
    assert make_args("--data-aug-level", 0).random_crop == 0
    parser = cli.ArgumentParser()
    data.add_data_aug_args(parser)
    data.set_data_aug_level(parser, 2)
    assert parser.parse_args([]).max_random_s == 50 and parser.parse_args([]).max_random_rotate_angle == 0


# --- batches -------------------------------------------------------------------------------------------

def test_batches_follow_the_loader_protocol(tmp_path):
    rec = write_rec(tmp_path / "a.rec", 10)
    train, val = loaders(rec, "--data-val", rec, "--rgb-mean", "1,2,3", "--rgb-std", "4,5,6")
    assert train.mean == (1, 2, 3) and train.std == (4, 5, 6) and val.mean == (1, 2, 3)
    assert len(train) == 3 and len(val) == 3
    images, labels = next(iter(train))
    assert images.dtype == torch.uint8 and images.shape == (4, 3, 8, 8)
    assert labels.dtype == torch.int64
    assert (images[:, 0] == 200).all()  # red (BGR channel 2 on disk) comes first: RGB
    val_batches = list(val)
    assert ids(val_batches) == list(range(10))  # validation: file order, last batch partial
    assert [len(labels) for _, labels in val_batches] == [4, 4, 2]
    assert [int(v) for _, labels in val_batches for v in labels] == [i % 3 for i in range(10)]


def test_training_batches_are_full_and_wrap_around(tmp_path):
    train, _ = loaders(write_rec(tmp_path / "a.rec", 10))
    batches = list(train)
    assert [len(labels) for _, labels in batches] == [4, 4, 4]
    assert sorted(set(ids(batches))) == list(range(10))


def test_fresh_shuffle_per_epoch_reproducible_from_seed(tmp_path):
    rec = write_rec(tmp_path / "a.rec", 20)
    train, _ = loaders(rec)
    orders = []
    for epoch in (0, 1, 0):
        train.set_epoch(epoch)
        orders.append(ids(train))
    assert orders[0] == orders[2] and orders[0] != orders[1]
    assert sorted(orders[0]) == list(range(20))
    other_seed, _ = loaders(rec, "--seed", 1)
    assert ids(other_seed) != orders[0]


def coordinate_coded(i, size):
    """Pixel (y, x) holds 8x + 4 in blue, 8y + 4 in green and 150 in red (BGR): a crop's offset and a
    mirror can be read back even after brightness has scaled every value by the same factor."""
    y, x = np.mgrid[0:size[0], 0:size[1]]
    return np.stack([8 * x + 4, 8 * y + 4, np.full(size, 150)], axis=2).astype(np.uint8)


def crop_and_mirror(image):
    """(y, x, mirrored) of the window of a coordinate_coded image that an RGB CHW `image` shows; the factor
    that brightness multiplied it by comes from the red plane."""
    red, green, blue = image.double()
    factor = red / 150
    ys, xs = torch.round((green / factor - 4) / 8).long(), torch.round((blue / factor - 4) / 8).long()
    h, w = ys.shape
    y0, x0, mirrored = int(ys[0, 0]), int(xs[0, 0]), bool(xs[0, 1] < xs[0, 0])
    assert torch.equal(ys, y0 + torch.arange(h)[:, None].expand(h, w))
    step = -1 if mirrored else 1
    assert torch.equal(xs, x0 + step * torch.arange(w)[None, :].expand(h, w))
    return y0, x0 - (w - 1) * mirrored, mirrored


def test_augmentation_is_the_same_whatever_the_worker_count(tmp_path):
    rec = write_rec(tmp_path / "a.rec", 12, size=(16, 16), pixels=coordinate_coded)
    argv = ("--random-crop", 1, "--random-mirror", 1, "--brightness", 0.3)
    in_process, _ = loaders(rec, *argv)
    with_workers, _ = data.get_rec_iter(make_args("--data-train", rec, "--image-shape", "3,8,8",
                                                  "--data-nthreads", 2, *argv), DistInfo())
    windows, factors = [], set()
    for a, b in zip(in_process, with_workers, strict=True):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        windows += [crop_and_mirror(image) for image in a[0]]
        factors |= {int(v) for v in a[0][:, 0, 0, 0]}  # red, 150 before brightness
    # the augmentations did change the pixels: crops at several offsets (0..8), some mirrored, brightness
    assert len(windows) == 12 and all(0 <= y <= 8 and 0 <= x <= 8 for y, x, _ in windows)
    assert len({(y, x) for y, x, _ in windows}) > 6 and 0 < sum(m for _, _, m in windows) < 12
    assert len(factors) > 6


@pytest.mark.parametrize("world_size", [2, 3])
def test_shards_are_disjoint_and_complete(tmp_path, world_size):
    rec = write_rec(tmp_path / "a.rec", 10)
    train_shards, val_shards, lengths = [], [], set()
    for rank in range(world_size):
        dist = DistInfo(rank=rank, world_size=world_size)
        train, val = loaders(rec, "--data-val", rec, "--batch-size", 2 * world_size, dist=dist)
        train.set_epoch(3)
        train_shards.append(set(ids(train)))
        val_shards.append(ids(val))
        lengths.add(len(train))
        assert len(list(train)) == len(train) and len(list(val)) == len(val)
    assert len(lengths) == 1  # every rank runs the same number of training batches
    assert set().union(*train_shards) == set(range(10)) and sum(map(len, train_shards)) == 10
    assert sorted(sum(val_shards, [])) == list(range(10))


def test_without_index_the_file_is_scanned(tmp_path, caplog):
    plain = write_rec(tmp_path / "noidx.rec", 6, index=False)
    with caplog.at_level(logging.INFO):
        _, val = loaders(plain, "--data-val", plain)
    assert "has no index" in caplog.text
    assert ids(val) == list(range(6))


def test_folder_of_record_files(tmp_path):
    (tmp_path / "recs").mkdir()
    write_rec(tmp_path / "recs" / "a.rec", 3)
    write_rec(tmp_path / "recs" / "b.rec", 4, index=False)
    _, val = loaders(tmp_path / "recs", "--data-val", tmp_path / "recs")
    assert ids(val) == [0, 1, 2, 0, 1, 2, 3]


def test_num_examples_does_not_cut_the_data(tmp_path):
    train, _ = loaders(write_rec(tmp_path / "a.rec", 10), "--num-examples", 5, "--batch-size", 5)
    assert sorted(ids(train)) == list(range(10))


def test_augmentation_options_reach_the_preset(tmp_path):
    rec = write_rec(tmp_path / "a.rec", 4, size=(20, 20))
    train, val = loaders(rec, "--data-val", rec, "--random-resized-crop", 1, "--min-random-area", 0.3,
                         "--max-random-aspect-ratio", 0.2, "--pad-size", 2, "--data-aug-level", 3)
    preset = train._loader.dataset.preset
    assert preset.random_resized_crop and preset.area_range == (0.3, 1) and preset.pad == 2
    assert preset.affine["max_rotate_angle"] == 10 and preset.rand_mirror
    assert type(val._loader.dataset.preset).__name__ == "EvalPreset"
    assert next(iter(train))[0].shape == (4, 3, 8, 8)


def test_synthetic_benchmark_data_needs_no_files():
    train, val = data.get_rec_iter(make_args("--benchmark", 1, "--num-classes", 7, "--image-shape", "3,16,16",
                                             "--batch-size", 6, "--num-examples", 3003), DistInfo())
    assert val is None and len(train) == 500 and train.mean == (123.68, 116.779, 103.939)  # 3003 // 6
    assert len(list(train)) == 500
    images, labels = next(iter(train))
    assert images.shape == (6, 3, 16, 16) and images.dtype == torch.uint8
    assert labels.dtype == torch.int64 and labels.max() < 7
    with pytest.raises(DataError, match="--num-classes"):
        data.get_synthetic_iter(make_args("--benchmark", 1), DistInfo())
    with pytest.raises(DataError, match="--num-examples 5 must be at least --batch-size 6"):
        data.get_synthetic_iter(make_args("--benchmark", 1, "--num-classes", 7, "--batch-size", 6,
                                          "--num-examples", 5), DistInfo())


# --- in-memory tensors (MNIST) -------------------------------------------------------------------------

def tensor_batches(n, batch_size, *, train, rank=0, world_size=1, seed=0):
    """TensorBatches over `n` one-pixel images; the label is the sample number, the pixel that number % 256."""
    images = (torch.arange(n) % 256).to(torch.uint8).reshape(n, 1, 1, 1)
    return data.TensorBatches(images, torch.arange(n), batch_size, shuffle=train, mean=(0.0,), std=(255.0,),
                              seed=seed, rank=rank, world_size=world_size)


def samples(batches):
    """The sample numbers of each batch, checking that images travel with their labels."""
    out = []
    for images, labels in batches:
        assert torch.equal(images[:, 0, 0, 0], (labels % 256).to(torch.uint8))
        out.append(labels.tolist())
    return out


# MNIST's 60,000 images, 7 processes, --batch-size 21 (3 a process): some shards hold one sample fewer
@pytest.mark.parametrize("n, world_size, batch_size", [(60000, 7, 3), (22, 7, 3), (20, 7, 3), (21, 7, 3)])
def test_tensor_training_batches_are_the_same_in_every_process(n, world_size, batch_size):
    shards, sizes = [], set()
    for rank in range(world_size):
        train = tensor_batches(n, batch_size, train=True, rank=rank, world_size=world_size, seed=5)
        train.set_epoch(2)
        batches = samples(train)
        assert len(batches) == len(train)
        sizes.add(tuple(map(len, batches)))
        shards.append(sum(batches, []))
    assert len(sizes) == 1  # every process runs the same number of batches of the same sizes: DDP's steps pair up
    assert len(shards[0]) == -(-n // world_size)
    # a short shard repeats its own first sample (wraps around, as ShardSampler): disjoint and complete
    distinct = [set(shard) for shard in shards]
    assert sum(map(len, distinct)) == n and set().union(*distinct) == set(range(n))


@pytest.mark.parametrize("n, world_size", [(22, 7), (20, 7), (10, 1)])
def test_tensor_validation_counts_every_sample_once(n, world_size):
    seen = []
    for rank in range(world_size):
        val = tensor_batches(n, 3, train=False, rank=rank, world_size=world_size)
        batches = samples(val)
        assert len(batches) == len(val)  # this process's own count: evaluation has no collective per batch
        assert sum(batches, []) == list(range(rank, n, world_size))
        seen += sum(batches, [])
    assert sorted(seen) == list(range(n))


def test_tensor_batches_of_one_process_are_as_before():
    """One process: the epoch's permutation in batches, the last one partial (MNIST runs stay identical)."""
    train = tensor_batches(10, 4, train=True, seed=3)
    train.set_epoch(1)
    order = torch.randperm(10, generator=torch.Generator().manual_seed(3 * 100_003 + 1))
    assert samples(train) == [part.tolist() for part in order.split(4)] and len(train) == 3
    assert samples(tensor_batches(10, 4, train=False)) == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_tensor_batches_need_a_sample_for_every_process():
    with pytest.raises(DataError, match="3 samples cannot be shared by 4 processes"):
        tensor_batches(3, 1, train=True, world_size=4)


# --- bad input -----------------------------------------------------------------------------------------

def test_undecodable_images_are_skipped_counted_and_logged(tmp_path, caplog):
    rec = write_rec(tmp_path / "a.rec", 8, bad={2, 5})
    train, _ = loaders(rec)
    with caplog.at_level(logging.WARNING):
        seen = ids(train)
    assert sorted(seen) == [0, 1, 3, 4, 6, 7] and train.num_skipped == 2
    assert f"{rec}: record at byte" in caplog.text and "(image id 2): image does not decode" in caplog.text


def test_label_outside_num_classes(tmp_path):
    rec = write_rec(tmp_path / "a.rec", 5, label=lambda i: 7 if i == 3 else 0)
    train, _ = loaders(rec, "--num-classes", 5)
    where = rf"{rec}: record at byte \d+ \(image id 3\)"
    with pytest.raises(DataError, match=where + ": label 7 is outside 0..4"):
        list(train)
    rec = write_rec(tmp_path / "b.rec", 3, label=lambda i: 1.5 if i == 2 else 0)
    with pytest.raises(DataError, match=r"\(image id 2\): label 1.5 is not a class number"):
        list(loaders(rec)[0])


def test_damaged_files(tmp_path):
    rec = write_rec(tmp_path / "a.rec", 3)
    raw = bytearray(rec.read_bytes())
    second = int((tmp_path / "a.idx").read_text().splitlines()[1].split("\t")[1])
    raw[second:second + 4] = b"XXXX"
    rec.write_bytes(bytes(raw))
    _, val = loaders(rec, "--data-val", rec)
    with pytest.raises(DataError, match=rf"{rec}: byte {second}: expected the record magic"):
        list(val)
    (tmp_path / "a.idx").write_text("0\t0\n1\t99999\n")
    with pytest.raises(DataError, match=r"a.idx: line 2: key 1 points to byte 99999, past the end"):
        loaders(rec)
    with pytest.raises(DataError, match="missing.idx: index file not found"):
        loaders(rec, "--data-train-idx", tmp_path / "missing.idx")


def test_truncated_file(tmp_path):
    rec = write_rec(tmp_path / "a.rec", 3, index=False)
    rec.write_bytes(rec.read_bytes()[:-10])
    with pytest.raises(DataError, match=rf"{rec}: byte \d+: record of \d+ bytes is truncated"):
        loaders(rec)
    write_rec(tmp_path / "b.rec", 3)
    (tmp_path / "b.rec").write_bytes((tmp_path / "b.rec").read_bytes()[:-10])
    _, val = loaders(tmp_path / "b.rec", "--data-val", tmp_path / "b.rec")
    with pytest.raises(DataError, match=r"b.rec: byte \d+: record of \d+ bytes is truncated"):
        list(val)


@pytest.mark.parametrize("argv, message", [
    ((), "--data-train is required"),
    (("--data-train", "/nonexistent.rec"), "no such file or folder"),
    (("--data-train", "{tmp}", "--data-train-idx", "x.idx"), "is a folder"),
    (("--data-train", "{tmp}"), "holds no .rec files"),
    (("--data-train", "{rec}", "--image-shape", "3,224"), "--image-shape '3,224'"),
    (("--data-train", "{rec}", "--rgb-mean", "1,2"), "--rgb-mean '1,2'"),
    (("--data-train", "{rec}", "--min-random-scale", "2"), "augmentation options: random scale range"),
])
def test_bad_options_are_clear_errors(tmp_path, argv, message):
    (tmp_path / "empty").mkdir()
    rec = write_rec(tmp_path / "a.rec", 2)
    argv = [a.format(tmp=tmp_path / "empty", rec=rec) for a in argv]
    with pytest.raises(DataError, match=message):
        data.get_rec_iter(make_args(*argv, "--data-nthreads", 0), DistInfo())

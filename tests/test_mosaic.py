"""data/imagenette_mosaic.py on the real Imagenette: labels, records, synset, splits and determinism."""
import filecmp
import os

import cv2
import numpy as np
import pytest

from common.recordio import IndexedRecordReader, unpack
from conftest import run_script
from imagenette_recs import IMAGENETTE, needs_imagenette
from tools.im2rec import read_list

pytestmark = needs_imagenette
TILE = 32


def build(folder, seed=0):
    done = run_script("data/imagenette_mosaic.py", "--source", IMAGENETTE, "--output", str(folder),
                      "--num-train", "12", "--num-val", "6", "--tile-size", str(TILE), "--seed", str(seed))
    assert done.returncode == 0, done.stderr
    return folder


@pytest.fixture(scope="module")
def mosaics(tmp_path_factory):
    return build(tmp_path_factory.mktemp("mosaic"))


def tiles(folder, split):
    """{index: [tile source paths]} from mosaic_<split>_tiles.tsv."""
    with open(folder / f"mosaic_{split}_tiles.tsv") as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    return {int(row[0]): row[1:] for row in rows}


@pytest.mark.parametrize("split, count", [("train", 12), ("val", 6)])
def test_labels_are_the_classes_of_the_tiles(mosaics, split, count):
    wnids = sorted(os.listdir(IMAGENETTE))
    items, problems = read_list(str(mosaics / f"mosaic_{split}.lst"))
    assert not problems and len(items) == count
    sources = tiles(mosaics, split)
    prefix = str(mosaics / f"mosaic_{split}")
    with IndexedRecordReader(prefix + ".idx", prefix + ".rec") as rec:
        assert rec.keys == [item.index for item in items]
        for item in items:
            classes = sorted({wnids.index(path.split("/")[0]) for path in sources[item.index]})
            assert item.labels == tuple(classes + [-1] * (4 - len(classes)))
            header, data = unpack(rec.read_idx(item.index))
            assert (header.flag, header.id) == (4, item.index)
            assert header.label.tolist() == list(item.labels)
            assert data == (mosaics / "images" / item.path).read_bytes()  # packed as they are
            mosaic = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert mosaic.shape == (2 * TILE, 2 * TILE, 3)
            # each tile shows its source image: JPEG at this size is lossy, so it is the closest of the four
            quads = [mosaic[r * TILE:(r + 1) * TILE, c * TILE:(c + 1) * TILE] for r in (0, 1) for c in (0, 1)]
            images = [cv2.resize(cv2.imread(os.path.join(IMAGENETTE, path), cv2.IMREAD_COLOR), (TILE, TILE),
                                 interpolation=cv2.INTER_AREA) for path in sources[item.index]]
            distance = np.array([[np.abs(quad.astype(int) - image).mean() for image in images]
                                 for quad in quads])
            assert (distance.argmin(1) == range(4)).all() and distance.diagonal().max() < 16, distance


def test_synset_names_the_ten_classes_in_label_order(mosaics):
    lines = (mosaics / "synset.txt").read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == sorted(os.listdir(IMAGENETTE))
    assert (lines[0], lines[1], lines[9]) == ("n01440764 tench", "n02102040 English springer",
                                              "n03888257 parachute")


def test_train_and_val_use_disjoint_source_images(mosaics):
    train, val = ({path for paths in tiles(mosaics, split).values() for path in paths}
                  for split in ("train", "val"))
    assert train and val and not train & val


def test_same_seed_same_bytes_other_seed_other_mosaics(mosaics, tmp_path):
    again = build(tmp_path / "again")
    names = sorted(os.path.relpath(os.path.join(d, f), again) for d, _, fs in os.walk(again) for f in fs)
    assert len(names) == 2 * 4 + 18 + 1  # .lst, _tiles.tsv, .rec, .idx per split; the images; synset
    match, mismatch, errors = filecmp.cmpfiles(mosaics, again, names, shallow=False)
    assert (mismatch, errors) == ([], [])
    other = build(tmp_path / "other", seed=1)
    assert (other / "mosaic_val.rec").read_bytes() != (mosaics / "mosaic_val.rec").read_bytes()


def test_bad_input_is_one_line(tmp_path):
    for folder in ("a", "b", "c"):
        (tmp_path / "src" / folder).mkdir(parents=True)
    done = run_script("data/imagenette_mosaic.py", "--source", str(tmp_path / "src"),
                      "--output", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"imagenette_mosaic.py: error: {tmp_path / 'src'}: 0 class folder(s) with images; a mosaic of 4 "
        "classes needs at least 4"]

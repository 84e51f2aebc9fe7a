"""Do MXNet 1.9.1 and our code agree on multi-label lists and records?

Builds a small multi-label set with data/imagenette_mosaic.py (2x2 mosaics of Imagenette, 4 label columns
padded with -1, packed by our tools/im2rec.py --pack-label --pass-through), then compares:

(a) MXNet's `mx.io.ImageRecordIter(label_width=4)` on our mosaic_train.rec and mosaic_val.rec gives the
    labels of the .lst, and so does our loader (`common.data.validation_batches(label_width=4)`);
(b) MXNet's own tools/im2rec.py and ours pack the same .lst files (the same images) into byte-identical .rec
    and .idx files, both run under MXNet's Python so that both encode with the same OpenCV: with --pack-label
    and --pass-through, with --pack-label re-encoding as JPEG at quality 95, and without --pack-label (the
    first label column only, flag 0); our loader reads MXNet's multi-label .rec files back with the .lst
    labels; and the .rec and .idx files data/imagenette_mosaic.py wrote equal MXNet's pass-through ones;
(c) MXNet refuses a label_width other than the records' label count, and a label_width above 1 on
    single-label records (docs/formats.md section 5.3).

    python checks/check_multilabel_mxnet.py [--source IMAGENETTE_VAL] [--mxnet-python /tmp/mxvenv/bin/python]

One line per comparison; exits 1 if any differs. Not run by the tests: it needs MXNet (see checks/README.md).
"""
import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SPLITS = ("mosaic_train", "mosaic_val")
WIDTH, TILE, BATCH = 4, 32, 8
PACKINGS = {"pass-through": ["--pack-label", "--pass-through"],
            "jpeg-95": ["--pack-label", "--quality", "95"],
            "first-label": ["--pass-through"]}  # without --pack-label: only the first label column, flag 0
WRONG_WIDTHS = (1, 3, 5)


def read_with_mxnet(out: str, reads: list[str]) -> None:
    """Runs under MXNet's Python: for each `rec:width` of `reads`, the labels ImageRecordIter(label_width=
    width) gives, or MXNet's error; a JSON list in `out`."""
    import mxnet as mx

    def labels(rec: str, width: int) -> dict:
        rows = []
        try:  # the iterator reads its first batch when it is made
            for batch in mx.io.ImageRecordIter(path_imgrec=rec, data_shape=(3, 2 * TILE, 2 * TILE),
                                               batch_size=BATCH, label_width=width, shuffle=False,
                                               preprocess_threads=1):
                rows.extend(batch.label[0].asnumpy().reshape(BATCH, -1)[:BATCH - batch.pad].tolist())
        except mx.base.MXNetError as e:
            return {"error": "Check failed" + str(e).split("Check failed", 1)[-1].splitlines()[0]}
        return {"labels": rows}

    results = [labels(rec, int(width)) for rec, width in (read.rsplit(":", 1) for read in reads)]
    with open(out, "w") as f:
        json.dump({"version": mx.__version__, "results": results}, f)


def list_labels(lst: str) -> np.ndarray:
    from tools.im2rec import read_list
    items, problems = read_list(lst)
    assert not problems, problems
    return np.array([item.labels for item in items])


def our_labels(rec: str) -> np.ndarray:
    """The labels our validation loader gives for `rec`, (N, WIDTH)."""
    from common import data
    from common.dist import DistInfo
    batches = data.validation_batches(rec, (3, 2 * TILE, 2 * TILE), BATCH, DistInfo(), mean=(0, 0, 0),
                                      std=(1, 1, 1), num_workers=0, label_width=WIDTH)
    return np.concatenate([labels.numpy() for _, labels in batches])


class Report:
    """Prints one line per comparison and remembers whether all of them agreed."""

    def __init__(self):
        self.ok = True

    def line(self, what: str, good: bool, good_word: str = "same", bad_word: str = "DIFFERENT") -> None:
        self.ok &= bool(good)
        print(f"{what}: {good_word if good else bad_word}", flush=True)

    def labels(self, what: str, found: np.ndarray, expected: np.ndarray) -> None:
        same = found.shape == expected.shape and (found == expected).all()
        self.line(f"{what} ({len(found)} x {found.shape[1] if found.ndim == 2 else '?'} labels)", same)


def same_file(folder_a: str, folder_b: str, name: str) -> bool:
    return filecmp.cmp(os.path.join(folder_a, name), os.path.join(folder_b, name), shallow=False)


def run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"check_multilabel_mxnet.py: {' '.join(command)} failed:\n{done.stdout}{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source",
                        help="Imagenette's val folder (default: $IMAGECLS_DATASETS/imagenette-224/val)")
    parser.add_argument("--mxnet-python", default="/tmp/mxvenv/bin/python", help="a Python with mxnet==1.9.1")
    parser.add_argument("--num-train", type=int, default=40, help="training mosaics")
    parser.add_argument("--num-val", type=int, default=20, help="validation mosaics")
    parser.add_argument("--mxnet-read", nargs="+", help=argparse.SUPPRESS)  # internal: the MXNet side
    args = parser.parse_args()
    if args.mxnet_read:
        read_with_mxnet(args.mxnet_read[0], args.mxnet_read[1:])
        return
    sys.path.insert(0, REPO)
    from common.cli import UserError
    from common.datasets import dataset_folder
    try:
        source = dataset_folder(args.source, "imagenette-224/val", "--source")
    except UserError as e:
        parser.error(str(e))
    find_im2rec = "import mxnet, os; print(os.path.join(os.path.dirname(mxnet.__file__), 'tools/im2rec.py'))"
    mx_im2rec = subprocess.run([args.mxnet_python, "-c", find_im2rec], capture_output=True, text=True,
                               check=True).stdout.strip()
    report = Report()
    with tempfile.TemporaryDirectory() as work:
        built = os.path.join(work, "built")
        run([sys.executable, os.path.join(REPO, "data", "imagenette_mosaic.py"), "--source", source,
             "--output", built, "--num-train", str(args.num_train), "--num-val", str(args.num_val),
             "--tile-size", str(TILE)])
        images = os.path.join(built, "images")
        expected = {split: list_labels(os.path.join(built, split + ".lst")) for split in SPLITS}

        packed = {}  # (packing, tool) -> folder
        for packing, options in PACKINGS.items():
            for tool, script in (("MXNet", mx_im2rec), ("ours", os.path.join(REPO, "tools", "im2rec.py"))):
                folder = packed[packing, tool] = os.path.join(work, packing, tool)
                os.makedirs(folder)
                for split in SPLITS:
                    shutil.copy(os.path.join(built, split + ".lst"), folder)
                run([args.mxnet_python, script, *options, os.path.join(folder, "mosaic"), images])

        recs = [os.path.join(built, split + ".rec") for split in SPLITS]
        single = os.path.join(packed["first-label", "ours"], SPLITS[1] + ".rec")
        reads = ([(rec, WIDTH) for rec in recs] + [(recs[1], width) for width in WRONG_WIDTHS]
                 + [(single, WIDTH)])
        mxnet_json = os.path.join(work, "mxnet.json")
        run([args.mxnet_python, os.path.abspath(__file__), "--mxnet-read", mxnet_json,
             *(f"{rec}:{width}" for rec, width in reads)])
        with open(mxnet_json) as f:
            mxnet = json.load(f)
        results = dict(zip(reads, mxnet["results"]))
        print(f"MXNet {mxnet['version']}; {args.num_train} + {args.num_val} mosaics of {source}")

        for split, rec in zip(SPLITS, recs):
            report.labels(f"(a) MXNet ImageRecordIter label_width={WIDTH} on our {split}.rec vs the .lst",
                          np.array(results[rec, WIDTH].get("labels", [])), expected[split])
            report.labels(f"(a) our loader label_width={WIDTH} on our {split}.rec vs the .lst",
                          our_labels(rec), expected[split])
        for packing in PACKINGS:
            for split in SPLITS:
                for ext in (".rec", ".idx"):
                    report.line(f"(b) {packing}: {split}{ext} of MXNet's im2rec.py vs ours",
                                same_file(packed[packing, "MXNet"], packed[packing, "ours"], split + ext),
                                "identical")
                if packing != "first-label":
                    report.labels(f"(b) {packing}: our loader on MXNet's {split}.rec vs the .lst",
                                  our_labels(os.path.join(packed[packing, "MXNet"], split + ".rec")),
                                  expected[split])
        for split in SPLITS:
            for ext in (".rec", ".idx"):
                report.line(f"(b) {split}{ext} of data/imagenette_mosaic.py vs MXNet's im2rec.py "
                            "--pass-through", same_file(built, packed["pass-through", "MXNet"], split + ext),
                            "identical")
        for rec, width, what in ([(recs[1], w, f"{WIDTH}-label records") for w in WRONG_WIDTHS]
                                 + [(single, WIDTH, "single-label records (flag 0)")]):
            error = results[rec, width].get("error")
            report.line(f"(c) MXNet label_width={width} on {what}", error is not None, f"refused: {error}",
                        "ACCEPTED")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()

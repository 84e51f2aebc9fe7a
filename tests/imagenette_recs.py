"""Small record files cut from $IMAGECLS_DATASETS/imagenette-224/val, packed by tools/im2rec.py as a user
would."""
import os

from common.datasets import link_subset
from conftest import dataset_path, missing_dataset, needs_dataset, run_script

IMAGENETTE_PARTS = ("imagenette-224", "val")
IMAGENETTE = dataset_path(*IMAGENETTE_PARTS)
needs_imagenette = needs_dataset(*IMAGENETTE_PARTS)


def missing_imagenette() -> str | None:
    """The skip reason when Imagenette is not available, else None."""
    return missing_dataset(*IMAGENETTE_PARTS)


def pack_imagenette(folder, per_class: int | None, resize: int, train_ratio: float = 1.0,
                    test_ratio: float = 0.0) -> str:
    """Link the first `per_class` images of each class (all with None) into `folder`/images, then make
    `folder`/imagenette*.rec with im2rec (short side resized to `resize`; im2rec's --train-ratio and
    --test-ratio split the shuffled list). Returns the prefix."""
    images = link_subset(IMAGENETTE, per_class, os.path.join(folder, "images"))
    prefix = os.path.join(folder, "imagenette")
    lists = ["--list", "--recursive", "--train-ratio", str(train_ratio), "--test-ratio", str(test_ratio)]
    for extra in (lists, ["--resize", str(resize)]):
        done = run_script("tools/im2rec.py", *extra, "--num-thread", "2", prefix, images)
        assert done.returncode == 0, done.stderr
    return prefix

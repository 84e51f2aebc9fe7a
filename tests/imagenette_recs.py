"""Small record files cut from ../shared/datasets/imagenette-224/val, packed by tools/im2rec.py as a user would."""
import os

import pytest

from conftest import SHARED, run_script

IMAGENETTE = os.path.join(SHARED, "datasets", "imagenette-224", "val")
needs_imagenette = pytest.mark.skipif(not os.path.isdir(IMAGENETTE), reason=f"Imagenette not found at {IMAGENETTE}")


def pack_imagenette(folder, per_class: int | None, resize: int, train_ratio: float = 1.0) -> str:
    """Link the first `per_class` images of each class (all with None) into `folder`/images, then make
    `folder`/imagenette*.rec with im2rec (short side resized to `resize`). Returns the prefix."""
    images = os.path.join(folder, "images")
    for wnid in sorted(os.listdir(IMAGENETTE)):
        os.makedirs(os.path.join(images, wnid))
        for name in sorted(os.listdir(os.path.join(IMAGENETTE, wnid)))[:per_class]:
            os.symlink(os.path.join(IMAGENETTE, wnid, name), os.path.join(images, wnid, name))
    prefix = os.path.join(folder, "imagenette")
    for extra in (["--list", "--recursive", "--train-ratio", str(train_ratio)], ["--resize", str(resize)]):
        done = run_script("tools/im2rec.py", *extra, "--num-thread", "2", prefix, images)
        assert done.returncode == 0, done.stderr
    return prefix

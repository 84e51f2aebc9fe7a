"""Where this machine keeps the real datasets: a folder given on the command line, or one under the folder
named by the environment variable IMAGECLS_DATASETS (which holds mnist/, cifar10/ and imagenette-224/); and
`link_subset`, a small copy of a class-folder set made of links, for benchmarks and tests."""
from __future__ import annotations

import os

from common.cli import UserError

ENV_VAR = "IMAGECLS_DATASETS"


def dataset_folder(given: str | None, name: str, option: str) -> str:
    """`given` (the value of command-line `option`) if not None, else $IMAGECLS_DATASETS/`name` (such as
    'mnist' or 'imagenette-224/val'). UserError when neither is set or the folder does not exist."""
    if given is not None:
        folder = given
        if not os.path.isdir(folder):
            raise UserError(f"{option} {folder}: no such folder")
        return folder
    root = os.environ.get(ENV_VAR)
    if not root:
        raise UserError(f"no dataset folder: give {option}, or set {ENV_VAR} to the folder holding mnist/, "
                        f"cifar10/ and imagenette-224/")
    folder = os.path.join(root, name)
    if not os.path.isdir(folder):
        raise UserError(f"{folder} not found ({ENV_VAR}={root}; give {option} for another folder)")
    return folder


def link_subset(classes: str, per_class: int | None, into: str) -> str:
    """A folder of class folders at `into` holding links to the first `per_class` files (sorted by name; all
    with None) of each class folder of `classes`; returns `into`."""
    for name in sorted(os.listdir(classes)):
        os.makedirs(os.path.join(into, name))
        for file in sorted(os.listdir(os.path.join(classes, name)))[:per_class]:
            os.symlink(os.path.abspath(os.path.join(classes, name, file)), os.path.join(into, name, file))
    return into

"""Where this machine keeps the real datasets: a folder given on the command line, or one under the folder
named by the environment variable IMAGECLS_DATASETS (which holds mnist/, cifar10/ and imagenette-224/)."""
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

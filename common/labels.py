"""Class names files: `synset.txt`, one class per line, line i naming class i (MXNet's convention), written
by `tools/im2rec.py --list`, found beside the training records, kept with each checkpoint and read by
score.py."""
from __future__ import annotations

import os

from common.cli import DataError

CLASS_NAMES_FILE = "synset.txt"


def write_class_names(path: str, names: list[str]) -> None:
    with open(path, "w") as f:
        f.write("".join(f"{name}\n" for name in names))


def read_class_names(path: str, num_classes: int | None = None) -> list[str]:
    """The names in `path` (blank lines ignored); DataError when they are not `num_classes`."""
    try:
        with open(path) as f:
            names = [line.strip() for line in f if line.strip()]
    except FileNotFoundError:
        raise DataError(f"{path}: no such class names file") from None
    if num_classes is not None and len(names) != num_classes:
        raise DataError(f"{path} names {len(names)} classes but there are {num_classes} "
                        "(--num-classes or the model's outputs)")
    return names


def beside(data_path: str) -> str:
    """Where the class names of a .rec file (or a folder of them) are: synset.txt in its folder."""
    folder = data_path if os.path.isdir(data_path) else os.path.dirname(data_path)
    return os.path.join(folder or ".", CLASS_NAMES_FILE)


def training_class_names(option: str | None, data_train: str | None, num_classes: int | None) -> list[str] | None:
    """The class names of a training run: the file `option` (--class-names), else synset.txt beside
    `data_train`, else None. Their number must be `num_classes`."""
    if option:
        return read_class_names(option, num_classes)
    if data_train and os.path.exists(path := beside(data_train)):
        return read_class_names(path, num_classes)
    return None

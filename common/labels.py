"""Class names files: `synset.txt`, one class per line, line i naming class i (MXNet's convention), written
by `tools/im2rec.py --list`, found beside the training records, kept with each checkpoint and read by
score.py."""
from __future__ import annotations

import os

from common.cli import DataError

CLASS_NAMES_FILE = "synset.txt"


def class_names_text(names: list[str]) -> str:
    return "".join(f"{name}\n" for name in names)


def parse_class_names(text: str) -> list[str]:
    """The names of a class names file's text: its lines, stripped, blank ones ignored."""
    return [line.strip() for line in text.splitlines() if line.strip()]


def write_class_names(path: str, names: list[str]) -> None:
    with open(path, "w") as f:
        f.write(class_names_text(names))


def read_class_names(path: str, num_classes: int | None = None) -> list[str]:
    """The names in `path`; DataError when they are not `num_classes`."""
    try:
        with open(path) as f:
            names = parse_class_names(f.read())
    except FileNotFoundError:
        raise DataError(f"{path}: no such class names file") from None
    if num_classes is not None and len(names) != num_classes:
        raise DataError(f"{path} names {len(names)} classes but there are {num_classes} "
                        "(--num-classes or the model's outputs)")
    return names


def beside(path: str) -> str:
    """synset.txt in the folder of the file `path` (a .rec, a list prefix, a checkpoint prefix)."""
    return os.path.join(os.path.dirname(path) or ".", CLASS_NAMES_FILE)


def training_class_names(option: str | None, data_train: str | None, num_classes: int | None) -> list[str] | None:
    """The class names of a training run: the file `option` (--class-names), else synset.txt beside
    `data_train`, else None. Their number must be `num_classes`."""
    if option:
        return read_class_names(option, num_classes)
    if not data_train:
        return None
    path = os.path.join(data_train, CLASS_NAMES_FILE) if os.path.isdir(data_train) else beside(data_train)
    return read_class_names(path, num_classes) if os.path.exists(path) else None

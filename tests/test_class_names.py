"""Class names travel the whole path on real images: im2rec --list names the classes (synset.txt) -> .rec ->
training keeps them with the checkpoint (PREFIX-synset.txt) -> score.py names its predictions, for one image
and per image of a .rec; a names file that disagrees with the number of classes is a one-line error."""
import csv
import os

from conftest import run_script
from imagenette_recs import IMAGENETTE, needs_imagenette, pack_imagenette
from test_score import train_small_resnet


@needs_imagenette
def test_class_names_from_the_list_to_the_predictions(tmp_path):
    rec = pack_imagenette(tmp_path, per_class=3, resize=36) + ".rec"
    wnids = sorted(os.listdir(IMAGENETTE))
    assert (tmp_path / "synset.txt").read_text().splitlines() == wnids  # label i = i-th folder
    prefix, _ = train_small_resnet(tmp_path, rec)
    assert open(prefix + "-synset.txt").read().splitlines() == wnids

    image = os.path.join(tmp_path, "images", wnids[3], sorted(os.listdir(tmp_path / "images" / wnids[3]))[0])
    model = ["--model", prefix, "--load-epoch", "1", "--image-shape", "3,32,32", "--gpus", ""]
    done = run_script("score.py", *model, "--image", image)
    assert done.returncode == 0, done.stderr
    assert [line.split("class=")[1] in wnids for line in done.stdout.splitlines()] == [True] * 5

    predictions = tmp_path / "predictions.csv"
    done = run_script("score.py", *model, "--data-val", rec, "--data-nthreads", "1", "--predictions",
                      str(predictions))
    assert done.returncode == 0, done.stderr
    with open(str(tmp_path / "imagenette.lst")) as f:
        listed = [line.split("\t") for line in f.read().splitlines()]
    with open(predictions) as f:
        rows = list(csv.DictReader(f))
    assert [row["id"] for row in rows] == [fields[0] for fields in listed]  # record order, the .lst index
    assert [row["label"] for row in rows] == [wnids[int(float(fields[1]))] for fields in listed]
    assert all(row[f"class_{k}"] in wnids for row in rows for k in range(1, 6))


@needs_imagenette
def test_names_that_disagree_with_the_classes_are_one_line(tmp_path):
    rec = pack_imagenette(tmp_path, per_class=1, resize=36) + ".rec"
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    done = run_script("train_cifar10.py", "--data-train", rec, "--data-val", "", "--class-names", str(three),
                      "--num-epochs", "1", "--gpus", "")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith(
        f"{three} names 3 classes but there are 10 (--num-classes or the model's outputs)"), done.stderr
    assert "Traceback" not in done.stderr
    # synset.txt beside the data is checked the same way
    (tmp_path / "synset.txt").write_text("a\nb\n")
    done = run_script("train_cifar10.py", "--data-train", rec, "--data-val", "", "--num-epochs", "1", "--gpus", "")
    assert done.returncode == 2 and "synset.txt names 2 classes but there are 10" in done.stderr, done.stderr
    # and a checkpoint's names, when score.py shows them
    (tmp_path / "ten.txt").write_text("".join(f"c{i}\n" for i in range(10)))
    prefix, _ = train_small_resnet(tmp_path, rec, val=None, extra=("--class-names", str(tmp_path / "ten.txt")))
    (tmp_path / "r20-synset.txt").write_text("x\ny\n")
    done = run_script("score.py", "--model", prefix, "--load-epoch", "1", "--data-val", rec, "--image-shape",
                      "3,32,32", "--gpus", "", "--predictions", str(tmp_path / "p.csv"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].endswith("r20-synset.txt names 2 classes but there are 10 "
                                                         "(--num-classes or the model's outputs)"), done.stderr

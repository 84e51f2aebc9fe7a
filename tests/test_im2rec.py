"""tools/im2rec.py: every option, against what MXNet's im2rec writes (docs/formats.md sections 4-5)."""
import os
import random
import subprocess
import sys

import cv2
import numpy as np
import pytest

from common.recordio import IndexedRecordReader, IRHeader, pack, read_index, unpack
from tools import im2rec

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def image(h, w, seed=0, channels=3):
    shape = (h, w, channels) if channels > 1 else (h, w)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


@pytest.fixture
def tree(tmp_path):
    """root/{top.jpg, b_cat/{x.png, y.jpg, notes.txt}, a_dog/{z.JPEG, deeper/w.jpg}, empty/}"""
    root = tmp_path / "root"
    for rel, (h, w) in {"top.jpg": (12, 20), "b_cat/x.png": (30, 18), "b_cat/y.jpg": (16, 16),
                        "a_dog/z.JPEG": (10, 25), "a_dog/deeper/w.jpg": (40, 30)}.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), image(h, w, seed=len(rel)))
    (root / "b_cat/notes.txt").write_text("not an image")
    (root / "empty").mkdir()
    return root


def run(*argv):
    parser = im2rec.get_args_parser()
    args = parser.parse_args([str(a) for a in argv])
    im2rec.check_args(parser, args)
    return im2rec.main(args)


def lines(path):
    return path.read_text().splitlines()


# --- list mode -----------------------------------------------------------------------------------------

def test_list_root_only_sorted_label_zero(tree, tmp_path):
    run("--list", "--no-shuffle", tmp_path / "data", tree)
    assert lines(tmp_path / "data.lst") == ["0\t0.000000\ttop.jpg"]


def test_list_recursive_labels_by_folder(tree, tmp_path, capsys):
    run("--list", "--recursive", "--no-shuffle", tmp_path / "data", tree)
    # root holds an image, so it is class 0; folders in sorted order; nested folders are classes too
    assert lines(tmp_path / "data.lst") == [
        "0\t0.000000\ttop.jpg",
        "1\t1.000000\ta_dog/z.JPEG",
        "2\t2.000000\ta_dog/deeper/w.jpg",
        "3\t3.000000\tb_cat/x.png",
        "4\t3.000000\tb_cat/y.jpg",
    ]
    assert ". 0\na_dog 1\na_dog/deeper 2\nb_cat 3\n" in capsys.readouterr().out


def test_list_shuffle_is_mxnets(tree, tmp_path):
    run("--list", "--recursive", "--no-shuffle", tmp_path / "plain", tree)
    run("--list", "--recursive", tmp_path / "shuffled", tree)
    expected = lines(tmp_path / "plain.lst")
    random.seed(100)
    random.shuffle(expected)
    assert lines(tmp_path / "shuffled.lst") == expected


def test_list_exts(tree, tmp_path):
    run("--list", "--recursive", "--no-shuffle", tmp_path / "data", tree, "--exts", ".png")
    assert lines(tmp_path / "data.lst") == ["0\t0.000000\tb_cat/x.png"]


def test_list_chunks_and_ratios(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for i in range(10):
        cv2.imwrite(str(root / f"{i:02d}.png"), image(2, 2))
    run("--list", "--no-shuffle", "--chunks", "3", "--train-ratio", "0.5", "--test-ratio", "0.25",
        tmp_path / "d", root)
    # chunk size ceil(10/3) = 4: test = first int(4*0.25) = 1, train = next int(4*0.5) = 2, val = the rest
    names = lambda f: [line.split("\t")[-1] for line in lines(tmp_path / f)]  # noqa: E731
    assert names("d_0_test.lst") == ["00.png"]
    assert names("d_0_train.lst") == ["01.png", "02.png"]
    assert names("d_0_val.lst") == ["03.png"]
    assert names("d_2_test.lst") == ["08.png"] and names("d_2_train.lst") == ["09.png"]
    assert names("d_2_val.lst") == []
    assert not (tmp_path / "d.lst").exists()


def test_list_train_ratio_without_test(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    for i in range(5):
        cv2.imwrite(str(root / f"{i}.png"), image(2, 2))
    run("--list", "--no-shuffle", "--train-ratio", "0.6", tmp_path / "d", root)
    assert len(lines(tmp_path / "d_train.lst")) == 3 and len(lines(tmp_path / "d_val.lst")) == 2
    assert not (tmp_path / "d_test.lst").exists()
    run("--list", "--no-shuffle", "--train-ratio", "0.6", "--test-ratio", "0.4", tmp_path / "e", root)
    assert not (tmp_path / "e_val.lst").exists() and len(lines(tmp_path / "e_test.lst")) == 2


# --- record mode ---------------------------------------------------------------------------------------

def records(prefix):
    reader = IndexedRecordReader(f"{prefix}.idx", f"{prefix}.rec")
    return [(key, *unpack(reader.read_idx(key))) for key in reader.keys]


def expected_payload(path, key, label, quality=95, color=1):
    img = cv2.imread(str(path), color)
    encoded = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()
    return pack(IRHeader(0, label, key, 0), encoded)


def test_pack_matches_mxnet_bytes_in_list_order(tree, tmp_path):
    lst = tmp_path / "data.lst"
    lst.write_text("7\t1.000000\tb_cat/y.jpg\n3\t0.000000\ttop.jpg\n12\t2.500000\ta_dog/deeper/w.jpg\n")
    run(tmp_path / "data", tree)
    expected = [expected_payload(tree / "b_cat/y.jpg", 7, 1.0), expected_payload(tree / "top.jpg", 3, 0.0),
                expected_payload(tree / "a_dog/deeper/w.jpg", 12, 2.5)]
    reader = IndexedRecordReader(str(tmp_path / "data.idx"), str(tmp_path / "data.rec"))
    assert reader.keys == [7, 3, 12]
    assert [reader.read_idx(k) for k in reader.keys] == expected
    offsets = list(read_index(str(tmp_path / "data.idx")).values())
    assert offsets == reader.scan_offsets() and offsets[0] == 0


def test_many_threads_give_the_same_file(tree, tmp_path):
    run("--list", "--recursive", tmp_path / "one", tree)
    (tmp_path / "many.lst").write_bytes((tmp_path / "one.lst").read_bytes())
    run(tmp_path / "one", tree)
    run("--num-thread", "3", tmp_path / "many", tree)
    assert (tmp_path / "many.rec").read_bytes() == (tmp_path / "one.rec").read_bytes()
    assert (tmp_path / "many.idx").read_bytes() == (tmp_path / "one.idx").read_bytes()


@pytest.mark.parametrize("h, w, size, expected", [(30, 18, 10, (16, 10)),   # h > w: width = size
                                                  (12, 20, 6, (6, 10)),      # w > h: height = size
                                                  (16, 16, 32, (32, 32))])   # also upsamples
def test_resize_short_edge(tmp_path, h, w, size, expected):
    root = tmp_path / "root"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), image(h, w))
    (tmp_path / "d.lst").write_text("0\t0.000000\ta.png\n")
    run("--resize", size, "--encoding", ".png", tmp_path / "d", root)
    (_, _, data), = records(tmp_path / "d")
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), -1)
    assert decoded.shape[:2] == expected
    assert np.array_equal(decoded, cv2.resize(image(h, w), expected[::-1]))


@pytest.mark.parametrize("h, w", [(30, 18), (12, 21)])
def test_center_crop(tmp_path, h, w):
    root = tmp_path / "root"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), image(h, w))
    (tmp_path / "d.lst").write_text("0\t0.000000\ta.png\n")
    run("--center-crop", "--encoding", ".png", tmp_path / "d", root)
    (_, _, data), = records(tmp_path / "d")
    short, margin = min(h, w), (max(h, w) - min(h, w)) // 2
    expected = image(h, w)[margin:margin + short] if h > w else image(h, w)[:, margin:margin + short]
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1), expected)


def test_quality_encoding_and_color(tree, tmp_path):
    (tmp_path / "d.lst").write_text("0\t0.000000\tb_cat/x.png\n")
    run("--quality", "50", tmp_path / "d", tree)
    assert records(tmp_path / "d")[0][2] == expected_payload(tree / "b_cat/x.png", 0, 0.0, quality=50)[24:]
    run("--encoding", ".png", "--quality", "9", "--color", "0", tmp_path / "d", tree)
    data = records(tmp_path / "d")[0][2]
    gray = cv2.imread(str(tree / "b_cat/x.png"), 0)
    assert data == cv2.imencode(".png", gray, [cv2.IMWRITE_PNG_COMPRESSION, 9])[1].tobytes()


def test_color_unchanged_keeps_alpha(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    cv2.imwrite(str(root / "a.png"), image(5, 6, channels=4))
    (tmp_path / "d.lst").write_text("0\t0.000000\ta.png\n")
    run("--color", "-1", "--encoding", ".png", tmp_path / "d", root)
    data = records(tmp_path / "d")[0][2]
    assert np.array_equal(cv2.imdecode(np.frombuffer(data, np.uint8), -1), image(5, 6, channels=4))


def test_pass_through_keeps_file_bytes(tree, tmp_path):
    (tmp_path / "d.lst").write_text("5\t1.000000\tb_cat/notes.txt\n6\t2.000000\ttop.jpg\n")
    run("--pass-through", tmp_path / "d", tree)
    got = records(tmp_path / "d")
    assert got[0][2] == b"not an image" and got[1][2] == (tree / "top.jpg").read_bytes()
    assert got[1][1] == IRHeader(0, 2.0, 6, 0)


def test_pack_label(tree, tmp_path):
    (tmp_path / "d.lst").write_text("0\t1.000000\t2.500000\t-1.000000\ttop.jpg\n1\t4.000000\ttop.jpg\n")
    run("--pack-label", tmp_path / "d", tree)
    (_, multi, _), (_, single, _) = records(tmp_path / "d")
    assert multi.flag == 3 and multi.label.tolist() == [1.0, 2.5, -1.0]
    assert single == IRHeader(0, 4.0, 1, 0)
    run(tmp_path / "d", tree)  # without --pack-label only the first label is kept
    assert records(tmp_path / "d")[0][1] == IRHeader(0, 1.0, 0, 0)


def test_unreadable_images_are_skipped_and_counted(tree, tmp_path, capsys):
    (tree / "broken.jpg").write_bytes(b"\xff\xd8 garbage")
    (tmp_path / "d.lst").write_text("0\t0.000000\tbroken.jpg\n1\t0.000000\tmissing.jpg\n"
                                    "2\t0.000000\ttop.jpg\n3\t1.000000\tb_cat/notes.txt\n")
    for threads in ("1", "2"):
        assert run("--num-thread", threads, tmp_path / "d", tree) == 3
        assert [key for key, _, _ in records(tmp_path / "d")] == [2]
        captured = capsys.readouterr()
        assert "1 images packed, 3 skipped" in captured.out
        assert "skipped image 0" in captured.err and "missing.jpg: no such file" in captured.err


def test_bad_list_lines_are_reported_with_line_numbers(tree, tmp_path, capsys):
    (tmp_path / "d.lst").write_text("0\t0.000000\ttop.jpg\njunk line\n"
                                    "x\t1.0\ttop.jpg\n3\t0.000000\ttop.jpg\n")
    run(tmp_path / "d", tree)
    err = capsys.readouterr().err
    assert "d.lst: line 2: expected index<TAB>label<TAB>path, got 1 field(s)" in err
    assert "d.lst: line 3: index must be an integer" in err
    assert [key for key, _, _ in records(tmp_path / "d")] == [0, 3]


def test_every_list_with_the_prefix_is_packed(tree, tmp_path):
    run("--list", "--recursive", "--train-ratio", "0.6", tmp_path / "d", tree)
    run(tmp_path / "d", tree)
    assert len(records(tmp_path / "d_train")) == 3 and len(records(tmp_path / "d_val")) == 2


# --- command line --------------------------------------------------------------------------------------

def cli(*argv):
    return subprocess.run([sys.executable, os.path.join(REPO, "tools", "im2rec.py"), *map(str, argv)],
                          capture_output=True, text=True, cwd=REPO)


def test_cli_end_to_end_and_errors(tree, tmp_path):
    assert cli("--list", "--recursive", tmp_path / "d", tree).returncode == 0
    done = cli("--num-thread", "2", tmp_path / "d", tree)
    assert done.returncode == 0
    assert "5 images packed, 0 skipped" in done.stdout and "images/sec" in done.stdout
    missing = cli(tmp_path / "nothing", tree)
    assert missing.returncode != 0 and "no .lst file starting with" in missing.stderr
    assert "Traceback" not in missing.stderr
    bad = cli("--quality", "101", tmp_path / "d", tree)
    assert bad.returncode == 2 and "--quality 101 is outside 0-100" in bad.stderr
    assert cli(tmp_path / "d", tmp_path / "no-root").returncode == 2
    no_folder = cli("--list", tmp_path / "no" / "d", tree)
    assert no_folder.returncode == 2 and "does not exist" in no_folder.stderr

"""common/augment.py: shapes, ranges, determinism under a seed, and MXNet's documented behaviour (docs/formats.md
section 8): an augmentation is checked pixel for pixel against the result computed by hand from the same draws
(a copy of the generator)."""
import copy

import cv2
import numpy as np
import pytest

from common import augment
from common.augment import EvalPreset, TrainPreset


def coordinates(h, w):
    """A BGR image whose pixel (y, x) holds (y, x, 0): crops can be located exactly."""
    img = np.zeros((h, w, 3), np.uint8)
    img[:, :, 0] = np.arange(h)[:, None]
    img[:, :, 1] = np.arange(w)[None, :]
    return img


def png(img):
    return cv2.imencode(".png", img)[1].tobytes()


def jpeg(img, quality=95):
    return cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])[1].tobytes()


def smooth(h, w):
    """A smooth colour image (JPEG-friendly) for comparing decode paths."""
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x * 255 // w, y * 255 // h, (x + y) * 255 // (h + w)], axis=2).astype(np.uint8)


def rng(seed=0):
    return np.random.default_rng(seed)


def colours():
    """16 x 16 BGR pixels of every kind: a gray ramp from black to white, pure and mixed colours (some with
    channels at 0 or 255, so that clipping shows), and a seeded spread of the rest."""
    img = np.random.default_rng(7).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    img[0] = np.linspace(0, 255, 16).astype(np.uint8)[:, None]
    img[1, :8] = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (0, 255, 255), (255, 0, 255),
                  (250, 240, 245), (30, 10, 20)]
    return img


def twin(generator):
    """(the generator, a copy of it): the copy draws the same numbers that the function under test will."""
    return generator, copy.deepcopy(generator)


def origin(crop):
    return int(crop[0, 0, 0]), int(crop[0, 0, 1])  # (y, x) of the crop's top-left pixel


# --- decoding ------------------------------------------------------------------------------------------

def test_decode_color_gray_and_garbage():
    img = coordinates(9, 12)
    assert np.array_equal(augment.decode(png(img), 3), img)
    assert augment.decode(png(img), 1).shape == (9, 12, 1)
    assert augment.decode(b"not an image", 3) is None
    assert augment.decode(b"", 3) is None


@pytest.mark.parametrize("k", [2, 4, 8])
def test_reduced_decode_size(k):
    decoded = augment.decode(jpeg(smooth(100, 67)), 3, k)
    assert decoded.shape == (-(-100 // k), -(-67 // k), 3)


def test_jpeg_size_from_header():
    assert augment.jpeg_size(jpeg(smooth(37, 81))) == (37, 81)
    progressive = cv2.imencode(".jpg", smooth(20, 30), [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes()
    assert augment.jpeg_size(progressive) == (20, 30)
    assert augment.jpeg_size(png(smooth(5, 5))) is None
    assert augment.jpeg_size(b"\xff\xd8\xff") is None


def test_reduction_for():
    assert augment.reduction_for((0, 0, 500, 500), 224, 224) == 2
    assert augment.reduction_for((0, 0, 1800, 2000), 224, 224) == 8
    assert augment.reduction_for((0, 0, 447, 1000), 224, 224) == 1


# --- validation: centred crop --------------------------------------------------------------------------

@pytest.mark.parametrize("h, w, ch, cw", [(9, 12, 5, 7), (10, 10, 10, 10), (31, 8, 4, 8)])
def test_eval_centred_crop_offsets(h, w, ch, cw):
    crop = EvalPreset(height=ch, width=cw)(png(coordinates(h, w)), rng())
    assert crop.shape == (ch, cw, 3)
    assert origin(crop) == ((h - ch) // 2, (w - cw) // 2)


def test_eval_enlarges_small_images_keeping_aspect():
    out = EvalPreset(height=8, width=8)(png(coordinates(4, 6)), rng())
    assert out.shape == (8, 8, 3)
    # scaled by 2 to 8 x 12, then the centred 8 x 8: columns 2..9 of the enlarged image
    assert np.array_equal(out, augment.cut(cv2.resize(coordinates(4, 6), (12, 8)), (0, 2, 8, 8)))


def test_eval_undecodable_is_none():
    assert EvalPreset(height=4, width=4)(b"junk", rng()) is None


# --- training: crops -----------------------------------------------------------------------------------

def test_default_crop_centred_without_random_crop():
    crop = TrainPreset(height=5, width=7)(png(coordinates(9, 12)), rng())
    assert origin(crop) == (2, 2)


def test_random_crop_range_and_determinism():
    preset = TrainPreset(height=5, width=7, rand_crop=True)
    data = png(coordinates(20, 30))
    origins = {origin(preset(data, rng(seed))) for seed in range(60)}
    assert all(0 <= y <= 15 and 0 <= x <= 23 for y, x in origins) and len(origins) > 20
    assert np.array_equal(preset(data, rng(3)), preset(data, rng(3)))


def test_mirror_flips_half_the_time():
    preset = TrainPreset(height=5, width=7, rand_mirror=True)
    data = png(coordinates(9, 12))
    centred = TrainPreset(height=5, width=7)(data, rng())
    flips = []
    for seed in range(200):
        out = preset(data, rng(seed))
        assert np.array_equal(out, centred) or np.array_equal(out, centred[:, ::-1])
        flips.append(np.array_equal(out, centred[:, ::-1]))
    assert 70 < sum(flips) < 130


def test_random_resized_crop_box_area_and_ratio():
    for seed in range(50):
        y, x, h, w = augment.random_resized_crop_box(100, 200, rng(seed), (0.08, 1.0), (0.75, 4 / 3))
        assert 0 <= y <= 100 - h and 0 <= x <= 200 - w
        assert 0.08 * 20000 * 0.95 <= h * w <= 20000
        assert 0.7 <= w / h <= 1.4
    assert augment.random_resized_crop_box(10, 10, rng(), (1.0, 1.0), (3.0, 3.0)) is None  # never fits


def test_random_resized_crop_output_and_fallback():
    preset = TrainPreset(height=8, width=6, random_resized_crop=True, min_random_area=0.1,
                         min_aspect_ratio=0.75, max_aspect_ratio=1.33)
    out = preset(png(coordinates(40, 50)), rng())
    assert out.shape == (8, 6, 3)
    impossible = TrainPreset(height=4, width=4, random_resized_crop=True, min_aspect_ratio=5.0,
                             max_aspect_ratio=6.0)
    assert origin(impossible(png(coordinates(10, 10)), rng())) == (3, 3)  # 10 tries fail: centred crop


def test_crop_size_range():
    preset = TrainPreset(height=6, width=6, min_crop_size=10, max_crop_size=14, rand_crop=True)
    data = png(coordinates(30, 30))
    for seed in range(20):
        out = preset(data, rng(seed))
        assert out.shape == (6, 6, 3)
    # centred without --random-crop; a crop larger than the image shrinks to its short side
    centred = TrainPreset(height=10, width=10, min_crop_size=10, max_crop_size=10)(data, rng())
    assert origin(centred) == (10, 10)
    small = TrainPreset(height=4, width=4, min_crop_size=50, max_crop_size=50)(png(coordinates(8, 12)), rng())
    assert np.array_equal(small, augment.resize(coordinates(8, 12)[:, 2:10], 4, 4))


def test_reduced_decode_is_used_and_close_to_the_full_decode(monkeypatch):
    data = jpeg(smooth(480, 640))
    kwargs = dict(height=32, width=32, random_resized_crop=True, min_random_area=0.5, max_random_area=0.9,
                  min_aspect_ratio=0.8, max_aspect_ratio=1.25)
    reductions = []
    decode = augment.decode
    monkeypatch.setattr(augment, "decode", lambda d, c, k=1: reductions.append(k) or decode(d, c, k))
    fast = TrainPreset(**kwargs)(data, rng(5))
    assert reductions == [8]
    monkeypatch.setattr(augment, "jpeg_size", lambda d: None)  # forces the full decode
    full = TrainPreset(**kwargs)(data, rng(5))
    assert reductions[-1] == 1
    assert fast.shape == full.shape == (32, 32, 3)
    assert np.abs(fast.astype(int) - full.astype(int)).mean() < 4


# --- training: affine and padding ----------------------------------------------------------------------

def test_scale_changes_size():
    img = coordinates(20, 30)
    out = augment.affine_warp(img, rng(), max_rotate_angle=0, max_shear_ratio=0, scale_range=(2, 2),
                              ratio_range=(1, 1), fill_value=0)
    assert out.shape == (40, 60, 3)
    same = augment.affine_warp(img, rng(), max_rotate_angle=0, max_shear_ratio=0, scale_range=(1, 1),
                               ratio_range=(1, 1), fill_value=0)
    assert np.array_equal(same, img)


def test_rotation_fills_corners_and_is_deterministic():
    img = np.full((40, 40, 3), 200, np.uint8)
    kwargs = dict(max_rotate_angle=45, max_shear_ratio=0.2, scale_range=(0.9, 1.1), ratio_range=(0.8, 1.2),
                  fill_value=7)
    outs = [augment.affine_warp(img, rng(seed), **kwargs) for seed in (1, 1, 2)]
    assert np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[0], outs[2])
    rotated = [augment.affine_warp(img, rng(s), **kwargs) for s in range(10)]
    assert any((r[0, 0] == 7).all() for r in rotated)  # a rotated corner shows the fill value


def test_pad_border():
    out = augment.pad(coordinates(4, 5), 3, 99)
    assert out.shape == (10, 11, 3)
    assert (out[:3] == 99).all() and (out[:, -3:] == 99).all()
    assert np.array_equal(out[3:7, 3:8], coordinates(4, 5))


def test_train_with_padding_then_random_crop():
    """The crop is the window at the drawn offset of the padded image, fill pixels included."""
    img = coordinates(4, 5)
    padded = np.full((8, 9, 3), 99, np.uint8)  # built by hand: 2 pixels of fill_value on every side
    padded[2:6, 2:7] = img
    preset = TrainPreset(height=4, width=5, pad=2, fill_value=99, rand_crop=True)
    offsets, with_fill = set(), 0
    for seed in range(12):
        generator, draws = twin(rng(seed))
        out = preset(png(img), generator)
        y, x = int(draws.integers(0, 8 - 4 + 1)), int(draws.integers(0, 9 - 5 + 1))  # U_int[0, h - H], then w
        assert np.array_equal(out, padded[y:y + 4, x:x + 5]), (seed, y, x)
        offsets.add((y, x))
        with_fill += bool((out == 99).all(axis=2).any())
    assert len(offsets) > 4 and with_fill > 4  # many windows, most of them off the image's own 4 x 5


# --- colour --------------------------------------------------------------------------------------------

def test_brightness_contrast_saturation():
    img = smooth(16, 16)
    assert np.array_equal(augment.adjust_brightness(img, 1.0), img)
    brighter = augment.adjust_brightness(img, 1.5)
    assert np.array_equal(brighter, np.clip(np.round(img * 1.5), 0, 255).astype(np.uint8))
    flat = augment.adjust_contrast(img, 0.0)
    assert flat.std() < 1 and abs(flat.mean() - cv2.cvtColor(img, cv2.COLOR_BGR2GRAY).mean()) < 1
    gray = augment.adjust_saturation(img, 0.0)
    assert (gray.max(axis=2) - gray.min(axis=2)).max() <= 1


def gray_of(img):
    """The gray level of each pixel (OpenCV's, 0.299 R + 0.587 G + 0.114 B in its fixed-point rounding)."""
    return cv2.cvtColor(img.astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float64)


def jitter_by_hand(img, order, factors):
    """docs/formats.md 8.1 step 4: each step on the previous step's uint8 result, saturating to 0-255."""
    out = img.astype(np.float64)
    for step in order:
        a = factors[step]
        if step == 0:    # brightness: a * pixel
            out = a * out
        elif step == 1:  # contrast: blend with the image's mean gray level
            out = a * out + (1 - a) * gray_of(out).mean()
        else:            # saturation: blend each pixel with its own gray level
            out = a * out + (1 - a) * gray_of(out)[:, :, None]
        out = np.clip(np.round(out), 0, 255)
    return out


def test_color_jitter_applies_the_drawn_factors_in_the_drawn_order():
    img = colours()
    strengths = (0.4, 0.5, 0.6)
    orders = set()
    for seed in range(8):
        generator, draws = twin(rng(seed))
        out = augment.color_jitter(img, generator, *strengths)
        order = [int(i) for i in draws.permutation(3)]  # the order first, then one factor a step, in that order
        factors = {step: 1 + draws.uniform(-strengths[step], strengths[step]) for step in order}
        expected = jitter_by_hand(img, order, factors)
        assert out.dtype == np.uint8 and np.array_equal(out, expected), (seed, order, factors)
        assert generator.random() == draws.random()  # nothing else drawn
        assert np.abs(out.astype(int) - img).max() > 20  # it did change the image
        # the steps saturate, so the order shows in the pixels: the reverse order gives another image
        assert not np.array_equal(out, jitter_by_hand(img, order[::-1], factors))
        orders.add(tuple(order))
    assert len(orders) > 2


def test_color_jitter_skips_the_steps_without_strength():
    img = colours()
    generator, draws = twin(rng(3))
    out = augment.color_jitter(img, generator, 0.3, 0, 0)
    draws.permutation(3)
    a = 1 + draws.uniform(-0.3, 0.3)  # the one factor: brightness
    assert np.array_equal(out, np.clip(np.round(img * a), 0, 255).astype(np.uint8))
    assert generator.random() == draws.random()


def hls_by_hand(img, h, s, l):
    """docs/formats.md 8.1 step 5: add (h, l, s) in OpenCV's 8-bit HLS, clip to 0-180 and 0-255, back to BGR."""
    hls = cv2.cvtColor(img, cv2.COLOR_BGR2HLS).astype(int) + np.array([h, l, s])
    hls = np.clip(hls, 0, [180, 255, 255])
    return cv2.cvtColor(hls.astype(np.uint8), cv2.COLOR_HLS2BGR)


def test_hls_shift_adds_the_drawn_offsets():
    img = colours()
    for seed in range(6):
        generator, draws = twin(rng(seed))
        out = augment.hls_shift(img, generator, 30, 40, 60)
        h, s, l = (int(draws.uniform(-m, m)) for m in (30, 40, 60))  # hue, saturation, lightness
        assert len({h, s, l}) == 3  # distinct offsets: a channel mix-up would show
        assert np.array_equal(out, hls_by_hand(img, h, s, l)), (seed, h, s, l)
        assert generator.random() == draws.random()
        assert not np.array_equal(out, img)


def test_hls_lightness_shift_moves_the_lightness():
    img = colours()
    generator, draws = twin(rng(1))
    out = augment.hls_shift(img, generator, 0, 0, 50)
    _, _, l = (int(draws.uniform(-m, m)) for m in (0, 0, 50))  # U(-0, 0) draws too
    assert abs(l) > 10
    before, after = (cv2.cvtColor(i, cv2.COLOR_BGR2HLS).astype(int) for i in (img, out))
    mid = (before[:, :, 1] > 60) & (before[:, :, 1] < 190)  # away from black and white, no clipping
    assert abs(np.median(after[:, :, 1][mid] - before[:, :, 1][mid]) - l) <= 1
    assert np.array_equal(out, hls_by_hand(img, 0, 0, l))


def test_pca_lighting_adds_one_offset_per_channel():
    img = np.full((4, 4, 3), 128, np.uint8)
    assert np.array_equal(augment.pca_lighting(img, rng(), 0.0), img)
    out = augment.pca_lighting(img, rng(4), 0.1).astype(int) - 128
    rgb = augment.PCA_EIGVEC @ (rng(4).normal(0, 0.1, 3) * augment.PCA_EIGVAL)
    assert np.array_equal(out[0, 0], np.round(rgb[::-1]).astype(int))
    assert (out == out[0, 0]).all()


def test_full_train_preset_shape_and_determinism():
    preset = TrainPreset(height=24, width=20, rand_crop=True, rand_mirror=True, max_rotate_angle=10,
                         max_shear_ratio=0.1, max_aspect_ratio=0.25, min_random_scale=0.9,
                         max_random_scale=1.2,
                         pad=2, brightness=0.4, contrast=0.4, saturation=0.4, random_h=36, random_s=50,
                         random_l=50, pca_noise=0.1)
    data = jpeg(smooth(40, 50))
    out = preset(data, rng(11))
    assert out.shape == (24, 20, 3) and out.dtype == np.uint8
    assert np.array_equal(out, preset(data, rng(11)))
    assert not np.array_equal(out, preset(data, rng(12)))


def test_gray_images():
    preset = TrainPreset(height=4, width=4, channels=1, rand_crop=True, brightness=0.2)
    out = preset(png(coordinates(8, 8)), rng())
    assert out.shape == (4, 4, 1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(channels=1, saturation=0.4), "need colour"),
    (dict(channels=2), "1 or 3 channels"),
    (dict(min_random_scale=1.2, max_random_scale=1.0), "scale range"),
    (dict(min_random_area=0.0), "area range"),
    (dict(min_crop_size=10), "crop size range"),
    (dict(max_aspect_ratio=1.5), "aspect ratio range"),
])
def test_invalid_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainPreset(height=4, width=4, **kwargs)

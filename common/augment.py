"""Per-image decoding and augmentation with the semantics of MXNet's ImageRecordIter (docs/formats.md
section 8).

Images stay OpenCV BGR uint8 arrays (H, W, C) throughout, as in MXNet; the loader turns them into RGB CHW.
Randomness comes from a `numpy.random.Generator` passed in, so a seed fixes every draw.

Two presets, in the manner of torchvision's `presets.py`: `TrainPreset` (every augmentation option) and
`EvalPreset` (the centred crop). Both take the encoded image bytes, so that a crop which is later resized
can be decoded at 1/2, 1/4 or 1/8 size straight from the JPEG (OpenCV's reduced decode) when the crop is
at least twice as large as the output.
"""
from __future__ import annotations

import math
import struct

import cv2
import numpy as np

from common.cli import UserError

# AlexNet's PCA of ImageNet pixel colours (RGB): eigenvalues and eigenvectors (columns).
PCA_EIGVAL = np.array([55.46, 4.794, 1.148])
PCA_EIGVEC = np.array([[-0.5675, 0.7192, 0.4009],
                       [-0.5808, -0.0045, -0.8140],
                       [-0.5836, -0.6948, 0.4203]])

_DECODE_FLAGS = {  # (channels, reduction) -> OpenCV imdecode flag
    (3, 1): cv2.IMREAD_COLOR, (3, 2): cv2.IMREAD_REDUCED_COLOR_2,
    (3, 4): cv2.IMREAD_REDUCED_COLOR_4, (3, 8): cv2.IMREAD_REDUCED_COLOR_8,
    (1, 1): cv2.IMREAD_GRAYSCALE, (1, 2): cv2.IMREAD_REDUCED_GRAYSCALE_2,
    (1, 4): cv2.IMREAD_REDUCED_GRAYSCALE_4, (1, 8): cv2.IMREAD_REDUCED_GRAYSCALE_8,
}
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}

Box = tuple[int, int, int, int]  # y, x, height, width


def decode(data: bytes, channels: int, reduction: int = 1) -> np.ndarray | None:
    """Decode image bytes to BGR (H, W, 3) or gray (H, W, 1) uint8, `reduction` times smaller (1, 2, 4, 8);
    None when the bytes are not an image OpenCV can decode."""
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), _DECODE_FLAGS[channels, reduction])
    except cv2.error:
        return None
    if img is None:
        return None
    return _hwc(img)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(height, width) read from a JPEG's frame header without decoding; None for anything else."""
    if data[:2] != b"\xff\xd8":
        return None
    i, end = 2, len(data) - 9
    while i < end:
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
        elif marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, i + 5)
            return (height, width) if height and width else None
        elif marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
        else:
            i += 2 + struct.unpack_from(">H", data, i + 2)[0]
    return None


def reduction_for(box: Box, height: int, width: int) -> int:
    """Largest of 8, 4, 2 by which a crop `box` can shrink and still cover (height, width); else 1."""
    for k in (8, 4, 2):
        if box[2] >= k * height and box[3] >= k * width:
            return k
    return 1


def aspect_range(min_aspect_ratio: float | None, max_aspect_ratio: float) -> tuple[float, float]:
    """MXNet's aspect-ratio range: [min, max] when a minimum is given, else [1 - max, 1 + max]."""
    if min_aspect_ratio is None:
        return 1 - max_aspect_ratio, 1 + max_aspect_ratio
    return min_aspect_ratio, max_aspect_ratio


# --- geometry ------------------------------------------------------------------------------------------

def affine_warp(img: np.ndarray, rng: np.random.Generator, *, max_rotate_angle: int, max_shear_ratio: float,
                scale_range: tuple[float, float], ratio_range: tuple[float, float],
                fill_value: int) -> np.ndarray:
    """MXNet's random affine transform: rotation U_int[-r, r] degrees, shear U(-s, s), scale, aspect ratio
    (width/height); the output is `scale` times the input size, the border filled with `fill_value`."""
    shear = rng.uniform(-max_shear_ratio, max_shear_ratio)
    angle = math.radians(rng.integers(-max_rotate_angle, max_rotate_angle + 1))
    scale = rng.uniform(*scale_range)
    ratio = rng.uniform(*ratio_range)
    a, b = math.cos(angle), math.sin(angle)
    hs = 2 * scale / (1 + ratio)
    ws = ratio * hs
    rows, cols = img.shape[:2]
    new_width, new_height = int(scale * cols), int(scale * rows)
    m = np.array([[hs * a - shear * b * ws, hs * b + shear * a * ws, 0.0],
                  [-b * ws, a * ws, 0.0]], dtype=np.float32)
    m[0, 2] = (new_width - (m[0, 0] * cols + m[0, 1] * rows)) / 2
    m[1, 2] = (new_height - (m[1, 0] * cols + m[1, 1] * rows)) / 2
    out = cv2.warpAffine(img, m, (new_width, new_height), flags=cv2.INTER_LINEAR,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=(fill_value,) * 3)
    return _hwc(out)


def _hwc(img: np.ndarray) -> np.ndarray:
    """OpenCV drops the channel axis of one-channel images: put it back."""
    return img if img.ndim == 3 else img[:, :, None]


def pad(img: np.ndarray, size: int, fill_value: int) -> np.ndarray:
    out = cv2.copyMakeBorder(img, size, size, size, size, cv2.BORDER_CONSTANT, value=(fill_value,) * 3)
    return _hwc(out)


def resize(img: np.ndarray, height: int, width: int) -> np.ndarray:
    out = cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
    return _hwc(out)


def resize_to_cover(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize (keeping the aspect ratio) to the smallest size that covers height x width."""
    h, w = img.shape[:2]
    s = max(height / h, width / w)
    return resize(img, max(height, round(h * s)), max(width, round(w * s)))


def scale_up_to(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Enlarge just enough to cover height x width; larger images unchanged."""
    h, w = img.shape[:2]
    return img if h >= height and w >= width else resize_to_cover(img, height, width)


def crop_box(h: int, w: int, crop_h: int, crop_w: int, rng: np.random.Generator | None) -> Box:
    """A crop_h x crop_w window: at a random position with `rng`, else centred ((h - crop_h) // 2, ...)."""
    if rng is None:
        return (h - crop_h) // 2, (w - crop_w) // 2, crop_h, crop_w
    return int(rng.integers(0, h - crop_h + 1)), int(rng.integers(0, w - crop_w + 1)), crop_h, crop_w


def random_resized_crop_box(h: int, w: int, rng: np.random.Generator, area_range: tuple[float, float],
                            ratio_range: tuple[float, float], tries: int = 10) -> Box | None:
    """A window of U(area_range) of the image area with aspect ratio (width/height) U(ratio_range);
    None when `tries` draws all fall outside the image."""
    for _ in range(tries):
        target = h * w * rng.uniform(*area_range)
        ratio = rng.uniform(*ratio_range)
        crop_w, crop_h = round(math.sqrt(target * ratio)), round(math.sqrt(target / ratio))
        if 0 < crop_w <= w and 0 < crop_h <= h:
            return crop_box(h, w, crop_h, crop_w, rng)
    return None


def cut(img: np.ndarray, box: Box) -> np.ndarray:
    y, x, h, w = box
    return img[y:y + h, x:x + w]


# --- colour --------------------------------------------------------------------------------------------

def _gray(img: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.shape[2] == 3 else img[:, :, 0]


def adjust_brightness(img: np.ndarray, alpha: float) -> np.ndarray:
    return cv2.addWeighted(img, alpha, img, 0.0, 0.0).reshape(img.shape)


def adjust_contrast(img: np.ndarray, alpha: float) -> np.ndarray:
    """Blend with the image's mean gray level."""
    mean = float(_gray(img).mean())
    return cv2.addWeighted(img, alpha, img, 0.0, (1 - alpha) * mean).reshape(img.shape)


def adjust_saturation(img: np.ndarray, alpha: float) -> np.ndarray:
    """Blend each pixel with its own gray level."""
    gray = cv2.cvtColor(_gray(img), cv2.COLOR_GRAY2BGR)
    return cv2.addWeighted(img, alpha, gray, 1 - alpha, 0.0)


def color_jitter(img: np.ndarray, rng: np.random.Generator, brightness: float, contrast: float,
                 saturation: float) -> np.ndarray:
    """Brightness, contrast and saturation with factors 1 + U(-x, x), applied in a random order."""
    steps = [(adjust_brightness, brightness), (adjust_contrast, contrast), (adjust_saturation, saturation)]
    for i in rng.permutation(3):
        fn, strength = steps[i]
        if strength > 0:
            img = fn(img, 1 + rng.uniform(-strength, strength))
    return img


def hls_shift(img: np.ndarray, rng: np.random.Generator, max_h: int, max_s: int, max_l: int) -> np.ndarray:
    """Add int(U(-m, m)) to hue, lightness and saturation in OpenCV's 8-bit HLS, clipped to [0, 180] and
    [0, 255], as MXNet's random_h/s/l do."""
    hue, saturation, lightness = (int(rng.uniform(-m, m)) for m in (max_h, max_s, max_l))
    hls = cv2.cvtColor(img, cv2.COLOR_BGR2HLS).astype(np.int16)
    hls += np.array([hue, lightness, saturation], dtype=np.int16)
    np.clip(hls, 0, np.array([180, 255, 255], dtype=np.int16), out=hls)
    return cv2.cvtColor(hls.astype(np.uint8), cv2.COLOR_HLS2BGR)


def pca_lighting(img: np.ndarray, rng: np.random.Generator, sigma: float) -> np.ndarray:
    """AlexNet's lighting noise: add eigvec @ (N(0, sigma) * eigval) to every pixel (saturating)."""
    rgb = PCA_EIGVEC @ (rng.normal(0, sigma, 3) * PCA_EIGVAL)
    return cv2.add(img, (float(rgb[2]), float(rgb[1]), float(rgb[0]), 0.0))


# --- presets -------------------------------------------------------------------------------------------

class EvalPreset:
    """Validation: decode, enlarge only if smaller than the output, take the centred height x width crop."""

    def __init__(self, *, height: int, width: int, channels: int = 3):
        if channels not in (1, 3):
            raise UserError(f"images must have 1 or 3 channels, not {channels}")
        self.height, self.width, self.channels = height, width, channels

    def __call__(self, data: bytes, rng: np.random.Generator) -> np.ndarray | None:
        img = decode(data, self.channels)
        if img is None:
            return None
        img = scale_up_to(img, self.height, self.width)
        return cut(img, crop_box(*img.shape[:2], self.height, self.width, None))


class TrainPreset:
    """Training augmentation in MXNet's order (docs/formats.md section 8); each step only when asked for:

    1. affine warp (rotation, shear, scale, and aspect ratio unless random-resized-crop uses it);
    2. constant padding; 3. crop: random-resized-crop, a square of U_int[min_crop_size, max_crop_size]
    (clamped to the short side) resized to the output, or the default height x width crop (random or
    centred, after enlarging a smaller image); 4. brightness/contrast/saturation in random order;
    5. HLS shifts; 6. PCA lighting noise; 7. mirror with p = 0.5.
    """

    def __init__(self, *, height: int, width: int, channels: int = 3, rand_crop: bool = False,
                 rand_mirror: bool = False, max_rotate_angle: int = 0, max_shear_ratio: float = 0.0,
                 min_random_scale: float = 1.0, max_random_scale: float = 1.0, max_aspect_ratio: float = 0.0,
                 min_aspect_ratio: float | None = None, pad: int = 0, fill_value: int = 127,
                 random_resized_crop: bool = False, min_random_area: float = 1.0,
                 max_random_area: float = 1.0,
                 min_crop_size: int = -1, max_crop_size: int = -1, brightness: float = 0.0,
                 contrast: float = 0.0, saturation: float = 0.0, random_h: int = 0, random_s: int = 0,
                 random_l: int = 0, pca_noise: float = 0.0):
        if channels not in (1, 3):
            raise UserError(f"images must have 1 or 3 channels, not {channels}")
        if channels == 1 and (saturation or random_h or random_s or random_l or pca_noise):
            raise UserError("saturation, HLS and PCA noise augmentations need colour (3-channel) images")
        if not 0 < min_random_scale <= max_random_scale:
            raise UserError(f"random scale range [{min_random_scale}, {max_random_scale}] "
                             "is empty or not positive")
        if not 0 < min_random_area <= max_random_area <= 1:
            raise UserError(f"random area range [{min_random_area}, {max_random_area}] must lie in (0, 1]")
        if (min_crop_size == -1) != (max_crop_size == -1) or not min_crop_size <= max_crop_size:
            raise UserError(f"crop size range [{min_crop_size}, {max_crop_size}]: give both, min <= max")
        self.height, self.width, self.channels = height, width, channels
        self.rand_crop, self.rand_mirror = rand_crop, rand_mirror
        self.ratio_range = aspect_range(min_aspect_ratio, max_aspect_ratio)
        if not 0 < self.ratio_range[0] <= self.ratio_range[1]:
            raise UserError(f"aspect ratio range {self.ratio_range} is empty or not positive")
        self.random_resized_crop = random_resized_crop
        self.area_range = (min_random_area, max_random_area)
        self.crop_size_range = (min_crop_size, max_crop_size) if min_crop_size != -1 else None
        self.affine = dict(max_rotate_angle=max_rotate_angle, max_shear_ratio=max_shear_ratio,
                           scale_range=(min_random_scale, max_random_scale),
                           ratio_range=(1.0, 1.0) if random_resized_crop else self.ratio_range,
                           fill_value=fill_value)
        self.use_affine = (max_rotate_angle > 0 or max_shear_ratio > 0 or min_random_scale != 1
                           or max_random_scale != 1 or self.affine["ratio_range"] != (1.0, 1.0))
        self.pad, self.fill_value = pad, fill_value
        self.jitter = (brightness, contrast, saturation)
        self.hls = (random_h, random_s, random_l)
        self.pca_noise = pca_noise
        # The crop can be planned on the JPEG header's size, before decoding, when nothing changes the size
        # first and the crop is resized to the output anyway.
        self.plans_before_decode = ((random_resized_crop or self.crop_size_range is not None)
                                    and not self.use_affine and not pad)

    def _resized_crop_box(self, h: int, w: int, rng: np.random.Generator) -> Box | None:
        """The window that will be resized to the output, or None for the default crop."""
        if self.random_resized_crop:
            return random_resized_crop_box(h, w, rng, self.area_range, self.ratio_range)
        if self.crop_size_range is not None:
            size = min(int(rng.integers(self.crop_size_range[0], self.crop_size_range[1] + 1)), h, w)
            return crop_box(h, w, size, size, rng if self.rand_crop else None)
        return None

    def _decode_reduced(self, data: bytes, rng: np.random.Generator) -> np.ndarray | None:
        """Decode only the planned crop's worth of pixels: the cropped and resized image, or None when the
        crop cannot be planned from the header (the caller then takes the full path)."""
        size = jpeg_size(data)
        box = self._resized_crop_box(*size, rng) if size else None
        if box is None:
            return None
        k = reduction_for(box, self.height, self.width)
        img = decode(data, self.channels, k)
        if img is None or img.shape[:2] != (-(-size[0] // k), -(-size[1] // k)):  # e.g. EXIF rotation
            return None
        return resize(cut(img, tuple(v // k for v in box)), self.height, self.width)

    def _crop(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        box = self._resized_crop_box(*img.shape[:2], rng)
        if box is not None:
            return resize(cut(img, box), self.height, self.width)
        img = scale_up_to(img, self.height, self.width)
        return cut(img, crop_box(*img.shape[:2], self.height, self.width, rng if self.rand_crop else None))

    def __call__(self, data: bytes, rng: np.random.Generator) -> np.ndarray | None:
        img = self._decode_reduced(data, rng) if self.plans_before_decode else None
        if img is None:
            img = decode(data, self.channels)
            if img is None:
                return None
            if self.use_affine:
                img = affine_warp(img, rng, **self.affine)
            if self.pad:
                img = pad(img, self.pad, self.fill_value)
            img = self._crop(img, rng)
        if any(self.jitter):
            img = color_jitter(img, rng, *self.jitter)
        if any(self.hls):
            img = hls_shift(img, rng, *self.hls)
        if self.pca_noise > 0:
            img = pca_lighting(img, rng, self.pca_noise)
        if self.rand_mirror and rng.random() < 0.5:
            img = cv2.flip(img, 1).reshape(img.shape)  # contiguous: a [:, ::-1] view copies slowly later
        return img

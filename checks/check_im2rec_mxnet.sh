#!/usr/bin/env bash
# Byte comparison of tools/im2rec.py with MXNet 1.9.1's own tools/im2rec.py on the same folder and options.
#
#   python -m venv /tmp/mxvenv && /tmp/mxvenv/bin/pip install mxnet==1.9.1 "numpy<1.24" opencv-python-headless tqdm
#   bash checks/check_im2rec_mxnet.sh [IMAGE_ROOT] [MXNET_PYTHON]
#
# IMAGE_ROOT is a folder of class folders of images (default: $IMAGECLS_DATASETS/imagenette-224/val);
# MXNET_PYTHON the Python of that virtualenv (default: /tmp/mxvenv/bin/python).
#
# Both run under MXNet's Python, so both encode with the same OpenCV (JPEG bytes differ between OpenCV
# builds); every .lst, .idx and .rec must be identical.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
if [ $# -ge 1 ]; then
  root=$1
elif [ -n "${IMAGECLS_DATASETS:-}" ]; then
  root=$IMAGECLS_DATASETS/imagenette-224/val
else
  echo "check_im2rec_mxnet.sh: give IMAGE_ROOT, or set IMAGECLS_DATASETS to the folder holding imagenette-224/" >&2
  exit 2
fi
if [ ! -d "$root" ]; then
  echo "check_im2rec_mxnet.sh: $root: no such folder" >&2
  exit 2
fi
py=${2:-/tmp/mxvenv/bin/python}
mx_im2rec=$("$py" -c "import mxnet, os; print(os.path.join(os.path.dirname(mxnet.__file__), 'tools', 'im2rec.py'))")
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for d in $(ls "$root" | head -3); do  # 3 classes x 10 images
  mkdir -p "$work/images/$d"
  ls "$root/$d" | head -10 | while read -r f; do cp "$root/$d/$f" "$work/images/$d/"; done
done
status=0
compare() {  # NAME OPTIONS...
  local name=$1; shift
  for tool in mx ours; do
    local script=$mx_im2rec; [ $tool = ours ] && script=$here/tools/im2rec.py
    mkdir -p "$work/$name/$tool"
    "$py" "$script" --list --recursive --train-ratio 0.8 "$work/$name/$tool/sub" "$work/images" >/dev/null 2>&1
    "$py" "$script" "$@" "$work/$name/$tool/sub" "$work/images" >/dev/null 2>&1
  done
  for f in $(ls "$work/$name/mx"); do
    if cmp -s "$work/$name/mx/$f" "$work/$name/ours/$f"; then echo "$name $f identical"
    else echo "$name $f DIFFERENT"; status=1; fi
  done
}
compare jpeg-95 --num-thread 1
compare resize-crop-q90 --num-thread 2 --resize 128 --center-crop --quality 90
compare png --num-thread 1 --encoding .png --quality 3
compare pass-through --pass-through
exit $status

#!/usr/bin/env bash
# Pack the ImageNet-1k validation set as MXNet did: short side resized to 256, JPEG quality 90.
#
#   bash data/imagenet1k-val.sh ILSVRC2012_img_val.tar val.lst [OUT_DIR]
#
# ILSVRC2012_img_val.tar comes from image-net.org (it needs an account, so it is not downloaded here).
# val.lst maps each file to its class, in MXNet's .lst format (index<TAB>label<TAB>file name); MXNet
# published one at http://data.mxnet.io/models/imagenet/resnet/val.lst, fetched below when it is missing.
set -euo pipefail
tar_file=${1:?usage: $0 ILSVRC2012_img_val.tar val.lst [OUT_DIR]}
lst=${2:?usage: $0 ILSVRC2012_img_val.tar val.lst [OUT_DIR]}
out=${3:-data}
here=$(cd "$(dirname "$0")/.." && pwd)
[ -f "$tar_file" ] || { echo "imagenet1k-val.sh: error: $tar_file not found (download it from image-net.org)" >&2; exit 2; }
mkdir -p "$out/imagenet-val"
if [ ! -f "$lst" ]; then
  python -c "import sys; sys.path.insert(0, '$here'); from common.download import download; download('http://data.mxnet.io/models/imagenet/resnet/val.lst', '$lst')"
fi
tar -xf "$tar_file" -C "$out/imagenet-val"
cp "$lst" "$out/imagenet1k-val.lst"
python "$here/tools/im2rec.py" --resize 256 --quality 90 --num-thread "$(nproc)" "$out/imagenet1k-val" "$out/imagenet-val"
echo "wrote $out/imagenet1k-val.rec and $out/imagenet1k-val.idx"

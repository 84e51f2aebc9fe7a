#!/usr/bin/env bash
# Caltech-256 as record files for fine-tune.py, as MXNet's data/caltech256.sh prepares it: 60 images of
# every class for training (data/caltech256-train.rec), all the others for validation
# (data/caltech256-val.rec), short sides resized to 256, JPEG quality 95.
#
#   bash data/caltech256.sh            # downloads 256_ObjectCategories.tar (1.2 GB) into data/ first
#
# Without network access, put 256_ObjectCategories.tar in data/ by hand. Unlike MXNet's script, the
# 257.clutter folder is left out (fine-tune.py --num-classes 256 has no room for a 257th class) and the
# split is the same on every run (a fixed shuffle).
set -euo pipefail

IMG_TRAIN=${IMG_TRAIN:-60}   # training images per class
URLS=("https://data.caltech.edu/records/nyy15-4j048/files/256_ObjectCategories.tar"
      "http://www.vision.caltech.edu/Image_Datasets/Caltech256/256_ObjectCategories.tar")
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${ROOT}/data"

if [ ! -e 256_ObjectCategories.tar ]; then
    for url in "${URLS[@]}"; do
        curl -fL --retry 3 -C - -o 256_ObjectCategories.tar.part "${url}" \
            && mv 256_ObjectCategories.tar.part 256_ObjectCategories.tar && break
    done
    if [ ! -e 256_ObjectCategories.tar ]; then
        echo "cannot download Caltech-256: fetch ${URLS[0]} by hand and put it at ${PWD}/256_ObjectCategories.tar" >&2
        exit 1
    fi
fi

echo "unpacking 256_ObjectCategories.tar"
rm -rf 256_ObjectCategories caltech256_train caltech256_val
tar -xf 256_ObjectCategories.tar
rm -rf 256_ObjectCategories/257.clutter

# the first IMG_TRAIN images of a fixed shuffle of each class train, the rest validate
SHUFFLE='import random, sys; paths = sorted(sys.stdin.read().splitlines()); random.Random(100).shuffle(paths); print("\n".join(paths))'
for class_dir in 256_ObjectCategories/*/; do
    class=$(basename "${class_dir}")
    mkdir -p "caltech256_train/${class}" "caltech256_val/${class}"
    find "${class_dir}" -maxdepth 1 -name '*.jpg' | python -c "$SHUFFLE" > split.txt
    head -n "${IMG_TRAIN}" split.txt | xargs -d '\n' -r mv -t "caltech256_train/${class}/"
    tail -n +"$((IMG_TRAIN + 1))" split.txt | xargs -d '\n' -r mv -t "caltech256_val/${class}/"
done
rm -f split.txt
rm -rf 256_ObjectCategories

cd "${ROOT}"
for split in train val; do
    python tools/im2rec.py --list --recursive "data/caltech256-${split}" "data/caltech256_${split}/"
    python tools/im2rec.py --resize 256 --quality 95 --num-thread "$(nproc)" \
        "data/caltech256-${split}" "data/caltech256_${split}/"
done
echo "wrote data/caltech256-train.rec and data/caltech256-val.rec"

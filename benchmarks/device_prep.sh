#!/usr/bin/env bash
# Prepare a run of benchmarks/device_check.sh on a bare GPU machine. Run it HERE (a developer's
# machine, with registry access), in the repository root, before the device call:
#
#   bash benchmarks/device_prep.sh
#   device tool: run, carry [".whl", ".device"], command "bash benchmarks/device_check.sh", timeout_s 540
#
# The GPU machine has python3 (3.12) with torch, Lightning, torchmetrics, OpenCV, Pillow, timm and
# pytest, but not open_clip, Hydra/OmegaConf or pydensecrf, and ../shared does not travel. This puts
#   .whl/     open_clip_torch, ftfy, wcwidth, hydra-core, omegaconf (wheels for CPython 3.12) and the
#             antlr4 and pydensecrf2 sources (built there: it has Cython and a compiler), the versions
#             of this checkout's venv; device_check.sh installs them into /tmp/car-site
#   .device/  copies of ../shared/golden (GOLDEN=c1 copies only the first case) and ../shared/data's VOC
#             images; device_check.sh points CAR_GOLDEN_DIR and CAR_SHARED_DATA there
# Both folders are ignored by git (.gitignore has /.whl/; /.device/ goes to .git/info/exclude) and
# count towards the 64 MiB that travel (about 45 MiB with all golden cases).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GOLDEN=${GOLDEN:-all}
version() { "$PY" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl .device
grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >>.git/info/exclude
wheels=()
for pkg in open_clip_torch ftfy wcwidth hydra-core omegaconf; do wheels+=("$pkg==$(version "$pkg")"); done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "${wheels[@]}"
"$PY" -m pip download -q --no-deps --no-binary=:all: --no-build-isolation -d .whl \
  "antlr4-python3-runtime==$(version antlr4-python3-runtime)" "pydensecrf2==$(version pydensecrf2)"
shared=../shared
rm -rf .device/golden .device/data
mkdir -p .device/golden .device/data
if [ "$GOLDEN" = c1 ]; then
  cp "$shared"/golden/{make_weights.py,weights_spec.json,c1_032_default.npz} .device/golden/
else
  cp "$shared"/golden/{make_weights.py,weights_spec.json,*.npz} .device/golden/
fi
cp -r "$shared/data/VOCdevkit" .device/data/
du -sh .whl .device

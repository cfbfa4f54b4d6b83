#!/usr/bin/env bash
# Writes the key-frame parity fixtures: renders simulator videos (two city, two indoor) and the
# warp video (pan, zoom, roll over a textured poster) as PNG folders with our binary, runs the
# reference recipe with OpenCV on exactly those frames (tools/keyframes_opencv.py), and stores its
# kept indices under sim-bridge/tests/fixtures/keyframes/. The committed test
# (sim-bridge/tests/keyframe_parity.rs) re-renders the same frames in Rust and compares.
#
# Needs: python3 with opencv-python-headless==4.12.0.88 numpy==2.2.6 (installed here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -c 'import cv2' 2>/dev/null || python3 -m pip install --break-system-packages -q \
  opencv-python-headless==4.12.0.88 numpy==2.2.6
cargo build -q -p embodied-r-launch
bin="${CARGO_TARGET_DIR:-target}/debug/embodied-r"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=sim-bridge/tests/fixtures/keyframes
mkdir -p "$out"

"$bin" sim generate --kind city --scenes 2 --videos-per-scene 1 --seed 7 --no-mp4 --out "$work/city" >/dev/null
"$bin" sim generate --kind indoor --scenes 2 --videos-per-scene 1 --seed 7 --no-mp4 --out "$work/indoor" >/dev/null
"$bin" sim warp --out "$work/warp/videos/warp_1" --frames-per-phase 30 --seed 1 >/dev/null

for dir in "$work"/city/videos/* "$work"/indoor/videos/* "$work"/warp/videos/*; do
  name=$(basename "$dir")
  python3 tools/keyframes_opencv.py --input "$dir" --no-downsample --out "$out/$name.json" >/dev/null
  python3 tools/keyframes_opencv.py --input "$dir" --fps 4 --out "$out/${name}_4fps.json" >/dev/null
  echo "$name: $(python3 -c "import json,sys; d=json.load(open('$out/$name.json')); print(d['frames'], 'frames, kept', d['kept'])")"
done

# How much does the reference agree with itself when only its RANSAC samples change? (OpenCV
# seeds RANSAC with a constant; feeding the matches in another order is the same as another seed.)
python3 - "$work" "$out" <<'PY'
import glob, json, os, subprocess, sys
work, out = sys.argv[1], sys.argv[2]
def jac(a, b):
    a, b = set(a), set(b)
    return len(a & b) / len(a | b)
table = {}
for d in sorted(glob.glob(f"{work}/*/videos/*")):
    n = os.path.basename(d)
    for suffix, args in [("", ["--no-downsample"]), ("_4fps", ["--fps", "4"])]:
        base = json.load(open(f"{out}/{n}{suffix}.json"))["selected_before_clamp"]
        js = []
        for seed in range(1, 6):
            r = subprocess.run([sys.executable, "tools/keyframes_opencv.py", "--input", d, *args,
                                "--shuffle-matches", str(seed)], capture_output=True, text=True, check=True)
            js.append(round(jac(json.loads(r.stdout.splitlines()[-1])["selected_before_clamp"], base), 3))
        table[n + suffix] = js
        print(f"{n}{suffix}: OpenCV vs OpenCV with reshuffled RANSAC input: {js}")
json.dump(table, open(f"{out}/self_agreement.json", "w"), indent=1)
PY

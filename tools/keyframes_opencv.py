#!/usr/bin/env python3
"""Key-frame selection as the Embodied-R reference does it, with OpenCV (parity and speed anchor).

Implements docs of /work/shared/reference/embodied_r_spec.md sections 1.1-1.3:
- 1.1 downsampling: interval = int(fps); indices 0, interval, 2*interval, ... < frame_count,
  plus frame_count - 1. Skipped with --no-downsample. fps < 1 is an error here (the reference
  crashes with a zero range step).
- 1.2 selection: default ORB on BGR->GRAY, brute-force Hamming matcher with cross-check, RANSAC
  homography (reprojection threshold 5.0) from frame t's points to the last kept frame's points,
  overlap = area of the int32-truncated projected quadrilateral inside the image / (w*h).
  A frame is kept when overlap < 0.5 or a step fails (no descriptors, <= 10 matches, no
  homography); it then becomes the reference. First and last frames are always kept.
- 1.3 clamping to [4, 32] with constrained_sampling (Python round, i.e. half to even). Fewer than
  4 selected -> sample all downsampled positions down to 4.

Usage:
  python3 tools/keyframes_opencv.py --input PATH [--fps X] [--no-downsample] [--repeat N]
                                    [--out FILE.json]
PATH is a folder of .png/.jpg/.jpeg images (sorted by file name, read with cv2.imread, BGR;
fps from --fps, default 4.0) or a video file (cv2.VideoCapture; fps from the container, or
--fps if given).

The last stdout line is one JSON object:
  kept                   indices into the input frames after clamping
  selected_before_clamp  indices into the input frames chosen by the selection loop
  frames                 number of input frames (decoded)
  fps                    selection throughput: frames handled by the selection loop per second
                         (ORB + matching + homography + overlap on frames already in memory;
                         median over --repeat runs)
  overlaps               per frame t >= 1 of the loop: position, input frame, reference frame,
                         match count, inlier count, overlap (or null) and reason
                         ("no_descriptors", "few_matches", "no_homography", or null)
  opencv, threads        cv2.__version__ and cv2.getNumThreads() (default threading is left on)
plus input_fps, interval, processed, run_fps and median_seconds.

Tested with: Python 3.11.7, opencv-python-headless==4.12.0.88, numpy==2.2.6
  pip install --break-system-packages opencv-python-headless==4.12.0.88 numpy==2.2.6
"""

import argparse
import json
import os
import statistics
import sys
import time

import cv2
import numpy as np

IMAGE_EXTS = (".png", ".jpg", ".jpeg")
OVERLAP_THRESHOLD = 0.5
MIN_MATCHES_EXCLUSIVE = 10
RANSAC_REPROJ = 5.0
MIN_FRAMES = 4
MAX_FRAMES = 32


def fail(msg):
    print(f"error: {msg}", file=sys.stderr)
    sys.exit(2)


def downsample_indices(frame_count, fps):
    """Spec 1.1: every int(fps)-th index plus the last one."""
    if not (fps >= 1.0):  # also rejects NaN
        fail(f"fps {fps!r} < 1 gives a zero sampling interval; use --no-downsample or a larger --fps")
    interval = int(fps)
    wanted = list(range(0, frame_count, interval))
    if frame_count > 0 and (frame_count - 1) not in wanted:
        wanted.append(frame_count - 1)
    return interval, wanted


def load_folder(path, wanted_fn):
    names = sorted(n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTS))
    if not names:
        fail(f"no .png/.jpg/.jpeg files in {path}")
    wanted = wanted_fn(len(names))
    want = set(wanted) if wanted is not None else None
    frames, indices = [], []
    for i, name in enumerate(names):
        if want is not None and i not in want:
            continue
        img = cv2.imread(os.path.join(path, name), cv2.IMREAD_COLOR)
        if img is None:
            fail(f"cv2.imread could not read {name}")
        frames.append(img)
        indices.append(i)
    return frames, indices, len(names), len(names)


def load_video(path, wanted_fn):
    cap = cv2.VideoCapture(path)
    if not cap.isOpened():
        fail(f"cv2.VideoCapture could not open {path}")
    meta_count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    wanted = wanted_fn(meta_count)
    want = set(wanted) if wanted is not None else None
    frames, indices = [], []
    i = 0
    while True:
        ok, img = cap.read()
        if not ok:
            break
        if want is None or i in want:
            frames.append(img)
            indices.append(i)
        i += 1
    cap.release()
    if i != meta_count:
        print(
            f"warning: container says {meta_count} frames, decoded {i}"
            + (" (the reference silently loses wanted frames past the end)" if want is not None else ""),
            file=sys.stderr,
        )
    return frames, indices, i, meta_count


def extract_keyframes(frames, x=OVERLAP_THRESHOLD, shuffle_seed=None):
    """Spec 1.2. Returns (kept positions, per-frame debug records).

    shuffle_seed: if set, the matches are put in a seeded random order before the homography
    instead of distance order. OpenCV's RANSAC seeds itself with a constant, so this is how we
    measure how much the reference's own choice depends on its random samples.
    """
    rng = np.random.default_rng(shuffle_seed) if shuffle_seed is not None else None
    orb = cv2.ORB_create()
    bf = cv2.BFMatcher(cv2.NORM_HAMMING, crossCheck=True)
    ref_gray = cv2.cvtColor(frames[0], cv2.COLOR_BGR2GRAY)
    ref_kp, ref_des = orb.detectAndCompute(ref_gray, None)
    ref_pos = 0
    kept = [0]
    records = []
    for t in range(1, len(frames)):
        gray = cv2.cvtColor(frames[t], cv2.COLOR_BGR2GRAY)
        kp, des = orb.detectAndCompute(gray, None)
        rec = {"pos": t, "ref": ref_pos, "matches": None, "inliers": None, "overlap": None, "reason": None}
        keep = False
        if ref_des is None or des is None or len(ref_des) == 0 or len(des) == 0:
            rec["reason"] = "no_descriptors"
            keep = True
        else:
            matches = sorted(bf.match(ref_des, des), key=lambda m: m.distance)
            if rng is not None:
                matches = [matches[i] for i in rng.permutation(len(matches))]
            rec["matches"] = len(matches)
            if len(matches) <= MIN_MATCHES_EXCLUSIVE:
                rec["reason"] = "few_matches"
                keep = True
            else:
                src = np.float32([kp[m.trainIdx].pt for m in matches]).reshape(-1, 1, 2)
                dst = np.float32([ref_kp[m.queryIdx].pt for m in matches]).reshape(-1, 1, 2)
                M, inl = cv2.findHomography(src, dst, cv2.RANSAC, RANSAC_REPROJ)
                if M is None or M.size == 0:
                    rec["reason"] = "no_homography"
                    keep = True
                else:
                    rec["inliers"] = int(inl.sum()) if inl is not None else None
                    h, w = ref_gray.shape
                    corners = np.float32([[0, 0], [w, 0], [w, h], [0, h]]).reshape(-1, 1, 2)
                    proj = cv2.perspectiveTransform(corners, M)
                    full = np.zeros((h, w), np.uint8)
                    cv2.fillPoly(full, [np.int32(corners)], 255)
                    quad = np.zeros((h, w), np.uint8)
                    with np.errstate(invalid="ignore"):
                        quad_pts = np.int32(proj)
                    cv2.fillPoly(quad, [quad_pts], 255)
                    overlap = cv2.countNonZero(cv2.bitwise_and(full, quad)) / float(w * h)
                    rec["overlap"] = overlap
                    keep = overlap < x
        rec["kept"] = keep
        records.append(rec)
        if keep:
            kept.append(t)
            ref_gray, ref_kp, ref_des, ref_pos = gray, kp, des, t
    if kept[-1] != len(frames) - 1:
        kept.append(len(frames) - 1)
    return kept, records


def constrained_sampling(lst, m):
    """Spec 1.3: first, m-2 middle samples at round(i*s)+1 (half to even), last."""
    n = len(lst)
    if n <= m:
        return list(lst)
    s = (n - 2) / (m - 2)
    return [lst[0]] + [lst[round(i * s) + 1] for i in range(m - 2)] + [lst[n - 1]]


def clamp(selected, n_frames, lo=MIN_FRAMES, hi=MAX_FRAMES):
    if len(selected) < lo:
        return constrained_sampling(list(range(n_frames)), lo)
    if len(selected) > hi:
        return constrained_sampling(selected, hi)
    return list(selected)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, help="image folder or video file")
    ap.add_argument("--fps", type=float, default=None, help="frame rate of an image folder (default 4.0); overrides a video's")
    ap.add_argument("--no-downsample", action="store_true", help="run the selection on every input frame")
    ap.add_argument("--repeat", type=int, default=1, help="run the selection loop N times, report the median fps")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    ap.add_argument("--shuffle-matches", type=int, default=None, metavar="SEED",
                    help="stability experiment: feed RANSAC the matches in a seeded random order")
    args = ap.parse_args()
    if args.repeat < 1:
        fail("--repeat must be >= 1")

    is_dir = os.path.isdir(args.input)
    if not is_dir and not os.path.isfile(args.input):
        fail(f"{args.input} does not exist")

    input_fps = args.fps
    if not is_dir and input_fps is None:
        cap = cv2.VideoCapture(args.input)
        if not cap.isOpened():
            fail(f"cv2.VideoCapture could not open {args.input}")
        input_fps = float(cap.get(cv2.CAP_PROP_FPS))
        cap.release()
    if input_fps is None:
        input_fps = 4.0

    interval = None

    def wanted_fn(frame_count):
        nonlocal interval
        if args.no_downsample:
            return None
        interval, wanted = downsample_indices(frame_count, input_fps)
        return wanted

    if is_dir:
        frames, indices, n_input, meta_count = load_folder(args.input, wanted_fn)
    else:
        frames, indices, n_input, meta_count = load_video(args.input, wanted_fn)
    if not frames:
        fail("no frames decoded")

    runs = []
    result = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        kept, records = extract_keyframes(frames, shuffle_seed=args.shuffle_matches)
        dt = time.perf_counter() - t0
        runs.append(dt)
        if result is None:
            result = (kept, records)
        elif kept != result[0]:
            print("warning: selection differs between repeats", file=sys.stderr)
    kept, records = result
    median_s = statistics.median(runs)

    final = clamp(kept, len(frames))
    overlaps = []
    for rec in records:
        rec["frame"] = indices[rec["pos"]]
        rec["ref_frame"] = indices[rec["ref"]]
        overlaps.append(rec)

    out = {
        "kept": [indices[p] for p in final],
        "frames": n_input,
        "fps": len(frames) / median_s if median_s > 0 else None,
        "selected_before_clamp": [indices[p] for p in kept],
        "overlaps": overlaps,
        "processed": len(frames),
        "input_fps": input_fps,
        "interval": interval,
        "frame_count_meta": meta_count,
        "run_fps": [len(frames) / r for r in runs],
        "median_seconds": median_s,
        "opencv": cv2.__version__,
        "threads": cv2.getNumThreads(),
    }
    line = json.dumps(out)
    if args.out:
        with open(args.out, "w") as f:
            f.write(line + "\n")
    print(line)


if __name__ == "__main__":
    main()

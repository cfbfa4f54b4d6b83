#!/usr/bin/env python3
"""Writes tiny rosbag2 MCAP fixtures for the perception crate's image decoding (run by hand).

What it writes into --out DIR (default perception/tests/fixtures/mcap):
- images.mcap: a rosbag2 MCAP file (rosbags Writer, storage plugin MCAP, ROS2_HUMBLE types,
  CDR little endian, uncompressed chunks, schema encoding ros2msg), frame_id "camera".
  /camera/image_raw (sensor_msgs/msg/Image), 8x6 gradients, step = width * bytes per pixel,
  is_bigendian 0: rgb8, bgr8, mono8, yuv422 (UYVY: U Y0 V Y1), yuv422_yuy2 (YUYV: Y0 U Y1 V),
  then one rgb8 message whose data is shorter than height * step (bad).
  /camera/image_raw/compressed (sensor_msgs/msg/CompressedImage): "jpeg" (cv2, quality 95),
  "png", "rgb8; jpeg compressed bgr8" (image_transport style), then "jpeg" with random bytes (bad).
  Message i (in write order, both topics) has header stamp sec = 100 + i, nanosec = i * 1000 and
  the same time in ns as its bag (log/publish) timestamp.
- images.json: per message in order: topic, type, encoding or format, width, height, stamp_ns,
  cdr_len, bad, lossy, and "rgb", the flat row-major RGB8 pixels a correct decoder produces:
  raw encodings exactly; jpeg as decoded by cv2.imdecode (lossy: true, compare with a
  tolerance; "source_rgb" is the image before encoding); yuv422 / yuv422_yuy2 as cv2.cvtColor
  with COLOR_YUV2RGB_UYVY / COLOR_YUV2RGB_YUY2 gives them (BT.601 limited range, see "yuv_note").

The bag is read back with rosbags' Reader, deserialised and decoded again as a check.

Tested with: Python 3.11.7, rosbags==0.11.9, opencv-python-headless==4.12.0.88, numpy==2.2.6
  pip install --break-system-packages rosbags==0.11.9 opencv-python-headless==4.12.0.88 numpy==2.2.6
"""

import argparse
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

W, H = 8, 6
FRAME_ID = "camera"
RAW_TOPIC = "/camera/image_raw"
COMP_TOPIC = "/camera/image_raw/compressed"
IMAGE_T = "sensor_msgs/msg/Image"
COMP_T = "sensor_msgs/msg/CompressedImage"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "perception", "tests", "fixtures", "mcap")
YUV_NOTE = (
    "OpenCV YUV422 -> RGB: BT.601 limited range in 20-bit fixed point. "
    "C = max(0, Y - 16) * 1220542; D = U - 128; E = V - 128; half = 1 << 19; "
    "R = sat((C + 1673527 * E + half) >> 20); G = sat((C - 852492 * E - 409993 * D + half) >> 20); "
    "B = sat((C + 2116026 * D + half) >> 20) (arithmetic shift, sat = clamp to 0..255). "
    "Each pixel pair shares one U and one V (no chroma interpolation)."
)


def rgb_gradient(seed=0):
    """Deterministic 8x6 RGB gradient with distinct channels."""
    y, x = np.mgrid[0:H, 0:W]
    r = x * 32 + 7 + seed * 3  # <= 246 for seed <= 5, no wrap-around
    g = y * 45 + 3 + seed * 5  # <= 253
    b = (x + y) * 17 + 40 + seed * 2  # <= 254
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def smooth_gradient(seed=0):
    """Gentler 8x6 RGB gradient for JPEG, so decoders differ little at chroma edges."""
    y, x = np.mgrid[0:H, 0:W]
    r = 80 + x * 10 + seed * 4
    g = 90 + y * 12 - seed * 3
    b = 180 - (x + y) * 6 + seed * 2
    return np.stack([r, g, b], axis=-1).astype(np.uint8)


def yuv_planes():
    """Y per pixel, U and V per horizontal pixel pair, spanning most of the range."""
    y, x = np.mgrid[0:H, 0:W]
    Y = (16 + x * 27 + y * 4).astype(np.uint8)  # 16..223
    px = np.arange(W // 2)[None, :]
    py = np.arange(H)[:, None]
    U = (30 + px * 60 + py * 5).astype(np.uint8)  # 30..235
    V = (225 - px * 55 - py * 7).astype(np.uint8)  # 25..225
    return Y, U, V


def pack_uyvy(Y, U, V):
    out = np.empty((H, W * 2), np.uint8)
    out[:, 0::4] = U
    out[:, 1::4] = Y[:, 0::2]
    out[:, 2::4] = V
    out[:, 3::4] = Y[:, 1::2]
    return out


def pack_yuyv(Y, U, V):
    out = np.empty((H, W * 2), np.uint8)
    out[:, 0::4] = Y[:, 0::2]
    out[:, 1::4] = U
    out[:, 2::4] = Y[:, 1::2]
    out[:, 3::4] = V
    return out


def yuv_formula(Y, U, V):
    """Our own integer restatement of OpenCV's YUV422 -> RGB (cross-checks YUV_NOTE)."""
    Ue = np.repeat(U.astype(np.int64), 2, axis=1) - 128
    Ve = np.repeat(V.astype(np.int64), 2, axis=1) - 128
    C = np.maximum(0, Y.astype(np.int64) - 16) * 1220542
    half = 1 << 19
    r = (C + 1673527 * Ve + half) >> 20
    g = (C - 852492 * Ve - 409993 * Ue + half) >> 20
    b = (C + 2116026 * Ue + half) >> 20
    return np.clip(np.stack([r, g, b], -1), 0, 255).astype(np.uint8)


def build_messages():
    """Returns a list of dicts: topic, type, fields, expected."""
    msgs = []
    rgb = rgb_gradient(0)
    msgs.append(dict(topic=RAW_TOPIC, encoding="rgb8", step=W * 3, data=rgb.tobytes(), rgb=rgb))
    bgr_src = rgb_gradient(1)
    msgs.append(dict(topic=RAW_TOPIC, encoding="bgr8", step=W * 3, data=bgr_src[:, :, ::-1].tobytes(), rgb=bgr_src))
    y, x = np.mgrid[0:H, 0:W]
    mono = ((x * 31 + y * 9 + 5) % 256).astype(np.uint8)
    msgs.append(dict(topic=RAW_TOPIC, encoding="mono8", step=W, data=mono.tobytes(), rgb=np.repeat(mono[:, :, None], 3, -1),
                     note="gray g -> (g, g, g)"))
    Y, U, V = yuv_planes()
    ref = yuv_formula(Y, U, V)
    uyvy = pack_uyvy(Y, U, V)
    rgb_uyvy = cv2.cvtColor(uyvy.reshape(H, W, 2), cv2.COLOR_YUV2RGB_UYVY)
    yuyv = pack_yuyv(Y, U, V)
    rgb_yuyv = cv2.cvtColor(yuyv.reshape(H, W, 2), cv2.COLOR_YUV2RGB_YUY2)
    assert np.array_equal(rgb_uyvy, ref) and np.array_equal(rgb_yuyv, ref), "YUV_NOTE formula disagrees with OpenCV"
    msgs.append(dict(topic=RAW_TOPIC, encoding="yuv422", step=W * 2, data=uyvy.tobytes(), rgb=rgb_uyvy,
                     note="UYVY byte order; expected from cv2.cvtColor COLOR_YUV2RGB_UYVY"))
    msgs.append(dict(topic=RAW_TOPIC, encoding="yuv422_yuy2", step=W * 2, data=yuyv.tobytes(), rgb=rgb_yuyv,
                     note="YUYV byte order; expected from cv2.cvtColor COLOR_YUV2RGB_YUY2"))
    short = rgb_gradient(2).tobytes()[: H * W * 3 - 5]
    msgs.append(dict(topic=RAW_TOPIC, encoding="rgb8", step=W * 3, data=short, rgb=None, bad=True,
                     note=f"data is {len(short)} bytes, height*step is {H * W * 3}"))

    def jpeg(rgb_img):
        ok, buf = cv2.imencode(".jpg", np.ascontiguousarray(rgb_img[:, :, ::-1]), [cv2.IMWRITE_JPEG_QUALITY, 95])
        assert ok
        return buf.tobytes()

    def cv_decode_rgb(data):
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        return None if img is None else img[:, :, ::-1].copy()

    src = smooth_gradient(0)
    data = jpeg(src)
    msgs.append(dict(topic=COMP_TOPIC, format="jpeg", data=data, rgb=cv_decode_rgb(data), lossy=True, source_rgb=src,
                     note="cv2.imencode quality 95 (4:2:0 chroma); expected = cv2.imdecode"))
    src = rgb_gradient(4)
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(src[:, :, ::-1]))
    assert ok
    msgs.append(dict(topic=COMP_TOPIC, format="png", data=buf.tobytes(), rgb=src, note="lossless; 8-bit BGR PNG from cv2"))
    src = smooth_gradient(1)
    data = jpeg(src)
    msgs.append(dict(topic=COMP_TOPIC, format="rgb8; jpeg compressed bgr8", data=data, rgb=cv_decode_rgb(data), lossy=True,
                     source_rgb=src, note="image_transport style format; the JPEG itself is ordinary (colour-correct when decoded)"))
    rng = np.random.default_rng(1234)
    junk = rng.integers(0, 256, 200, dtype=np.uint8).tobytes()
    assert cv_decode_rgb(junk) is None
    msgs.append(dict(topic=COMP_TOPIC, format="jpeg", data=junk, rgb=None, bad=True, note="200 random bytes, not a JPEG"))
    return msgs


def write_bag(msgs, ts, bagdir):
    Header = ts.types["std_msgs/msg/Header"]
    Time = ts.types["builtin_interfaces/msg/Time"]
    Image = ts.types[IMAGE_T]
    Compressed = ts.types[COMP_T]
    with Writer(bagdir, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        conns = {
            RAW_TOPIC: writer.add_connection(RAW_TOPIC, IMAGE_T, typestore=ts),
            COMP_TOPIC: writer.add_connection(COMP_TOPIC, COMP_T, typestore=ts),
        }
        for i, m in enumerate(msgs):
            sec, nsec = 100 + i, i * 1000
            m["stamp_ns"] = sec * 1_000_000_000 + nsec
            header = Header(stamp=Time(sec=sec, nanosec=nsec), frame_id=FRAME_ID)
            payload = np.frombuffer(m["data"], np.uint8)
            if m["topic"] == RAW_TOPIC:
                obj = Image(header=header, height=H, width=W, encoding=m["encoding"], is_bigendian=0, step=m["step"], data=payload)
                cdr = ts.serialize_cdr(obj, IMAGE_T)
            else:
                obj = Compressed(header=header, format=m["format"], data=payload)
                cdr = ts.serialize_cdr(obj, COMP_T)
            m["cdr_len"] = len(cdr)
            writer.write(conns[m["topic"]], m["stamp_ns"], cdr)
            label = m.get("encoding", m.get("format"))
            print(f"{i:2d} {m['topic']:30s} {label!r:30s} data {len(m['data']):4d} B, CDR {len(cdr):4d} B")
    files = sorted(Path(bagdir).glob("*.mcap"))
    assert len(files) == 1, files
    return files[0]


def decode_raw(msg):
    """Minimal reference decoder of a deserialised Image, used only for the read-back check."""
    bpp = {"rgb8": 3, "bgr8": 3, "mono8": 1, "yuv422": 2, "yuv422_yuy2": 2}[msg.encoding]
    if msg.step < msg.width * bpp or len(msg.data) < msg.height * msg.step:
        return None
    rows = np.asarray(msg.data[: msg.height * msg.step]).reshape(msg.height, msg.step)[:, : msg.width * bpp]
    img = rows.reshape(msg.height, msg.width, bpp)
    if msg.encoding == "rgb8":
        return img.copy()
    if msg.encoding == "bgr8":
        return img[:, :, ::-1].copy()
    if msg.encoding == "mono8":
        return np.repeat(img, 3, -1)
    code = cv2.COLOR_YUV2RGB_UYVY if msg.encoding == "yuv422" else cv2.COLOR_YUV2RGB_YUY2
    return cv2.cvtColor(np.ascontiguousarray(img), code)


def verify(path, msgs, ts):
    with Reader(path) as reader:
        got = list(reader.messages())
        assert len(got) == len(msgs), (len(got), len(msgs))
        for (conn, t, raw), m in zip(got, msgs):
            assert conn.topic == m["topic"], (conn.topic, m["topic"])
            assert t == m["stamp_ns"]
            msg = ts.deserialize_cdr(raw, conn.msgtype)
            assert msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec == m["stamp_ns"]
            assert msg.header.frame_id == FRAME_ID
            assert bytes(msg.data) == m["data"]
            if conn.msgtype == IMAGE_T:
                assert (msg.encoding, msg.width, msg.height, msg.step, msg.is_bigendian) == (m["encoding"], W, H, m["step"], 0)
                img = decode_raw(msg)
            else:
                assert msg.format == m["format"]
                dec = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8), cv2.IMREAD_COLOR)
                img = None if dec is None else dec[:, :, ::-1]
            if m.get("bad"):
                assert img is None, "bad message decoded"
            else:
                assert img is not None and np.array_equal(img, m["rgb"]), "decoded pixels differ"
    print(f"read back {len(got)} messages from {path}: OK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    ts = get_typestore(Stores.ROS2_HUMBLE)
    msgs = build_messages()
    with tempfile.TemporaryDirectory() as tmp:
        produced = write_bag(msgs, ts, Path(tmp) / "bag")
        verify(produced, msgs, ts)
        dst = out / "images.mcap"
        shutil.copyfile(produced, dst)
    verify(dst, msgs, ts)

    entries = []
    for i, m in enumerate(msgs):
        e = {"index": i, "topic": m["topic"], "type": IMAGE_T if m["topic"] == RAW_TOPIC else COMP_T}
        if "encoding" in m:
            e["encoding"] = m["encoding"]
            e["step"] = m["step"]
        else:
            e["format"] = m["format"]
        ok = not m.get("bad", False)
        e["width"] = W if (ok or "encoding" in m) else None
        e["height"] = H if (ok or "encoding" in m) else None
        e["stamp_ns"] = m["stamp_ns"]
        e["data_len"] = len(m["data"])
        e["cdr_len"] = m["cdr_len"]
        e["bad"] = not ok
        e["lossy"] = bool(m.get("lossy", False))
        if ok:
            e["rgb"] = m["rgb"].reshape(-1).astype(int).tolist()
        if "source_rgb" in m:
            e["source_rgb"] = m["source_rgb"].reshape(-1).astype(int).tolist()
            e["max_abs_diff_vs_source"] = int(np.abs(m["rgb"].astype(int) - m["source_rgb"].astype(int)).max())
        if "note" in m:
            e["note"] = m["note"]
        entries.append(e)
    doc = {
        "bag": "images.mcap",
        "generator": "tools/fixtures_mcap.py",
        "versions": {"rosbags": importlib.metadata.version("rosbags"),
                     "opencv": cv2.__version__, "numpy": np.__version__},
        "frame_id": FRAME_ID,
        "yuv_note": YUV_NOTE,
        "messages": entries,
    }
    # One line per message keeps the flat pixel lists compact but the file still diffable.
    head = {k: v for k, v in doc.items() if k != "messages"}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()] + [' "messages": [']
    lines += [f"  {json.dumps(e, separators=(',', ':'))}" + ("," if i + 1 < len(entries) else "") for i, e in enumerate(entries)]
    lines += [" ]", "}"]
    with open(out / "images.json", "w") as f:
        f.write("\n".join(lines) + "\n")
    assert json.loads((out / "images.json").read_text()) == doc
    sizes = {p.name: p.stat().st_size for p in (out / "images.mcap", out / "images.json")}
    total = sum(sizes.values())
    print(f"wrote {sizes} total {total} B")
    if total >= 20_000:
        print("error: fixtures exceed 20 KB", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()

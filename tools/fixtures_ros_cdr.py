#!/usr/bin/env python3
"""Writes ROS 2 CDR golden messages for the perception crate's wire-format tests (run by hand).

An independent implementation (rosbags' typestore, ROS2_JAZZY definitions) serializes each
message the runtime exchanges; the Rust tests decode the bytes, compare every field with the
JSON, re-encode and require identical bytes (little-endian ones; the big-endian one is only
decoded, since we always write little-endian).

What it writes into --out DIR (default perception/tests/fixtures/ros):
- <name>.cdr: the serialized message, encapsulation header included (what rmw and
  zenoh-bridge-ros2dds carry and rosbag2 stores).
- messages.json: per message: name, file, type, rihs01 (REP-2016 hash of the type, as rmw_zenoh
  puts it in key expressions), little_endian, len, and the fields (uint8[] as lists).

Each file is read back with rosbags' deserialize_cdr as a check.

Tested with: Python 3.11.7, rosbags==0.11.9, numpy==2.2.6
  pip install --break-system-packages rosbags==0.11.9 numpy==2.2.6
"""

import argparse
import importlib.metadata
import json
from pathlib import Path

import numpy as np
from rosbags.typesys import Stores, get_typestore

TS = get_typestore(Stores.ROS2_JAZZY)
T = TS.types


def header(sec, nanosec, frame_id):
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec), frame_id=frame_id
    )


def hdr_json(sec, nanosec, frame_id):
    return {"sec": sec, "nanosec": nanosec, "frame_id": frame_id}


def vec3(x, y, z):
    return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def messages():
    out = []
    rgb = np.arange(18, dtype=np.uint8) * 13
    out.append(("image_rgb8", "sensor_msgs/msg/Image", True,
                T["sensor_msgs/msg/Image"](header=header(100, 5000, "camera"), height=2, width=3,
                                           encoding="rgb8", is_bigendian=0, step=9, data=rgb),
                {"header": hdr_json(100, 5000, "camera"), "height": 2, "width": 3,
                 "encoding": "rgb8", "is_bigendian": 0, "step": 9, "data": rgb.tolist()}))
    mono = np.array([0, 50, 100, 150, 200], dtype=np.uint8)
    out.append(("image_mono8_empty_frame", "sensor_msgs/msg/Image", True,
                T["sensor_msgs/msg/Image"](header=header(0, 0, ""), height=1, width=5,
                                           encoding="mono8", is_bigendian=0, step=5, data=mono),
                {"header": hdr_json(0, 0, ""), "height": 1, "width": 5, "encoding": "mono8",
                 "is_bigendian": 0, "step": 5, "data": mono.tolist()}))
    out.append(("image_rgb8_big_endian", "sensor_msgs/msg/Image", False,
                T["sensor_msgs/msg/Image"](header=header(-2, 999999999, "cam_be"), height=2,
                                           width=3, encoding="rgb8", is_bigendian=1, step=9,
                                           data=rgb),
                {"header": hdr_json(-2, 999999999, "cam_be"), "height": 2, "width": 3,
                 "encoding": "rgb8", "is_bigendian": 1, "step": 9, "data": rgb.tolist()}))
    jpeg = np.array([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3], dtype=np.uint8)
    out.append(("compressed_jpeg", "sensor_msgs/msg/CompressedImage", True,
                T["sensor_msgs/msg/CompressedImage"](header=header(7, 123, "camera"),
                                                     format="jpeg", data=jpeg),
                {"header": hdr_json(7, 123, "camera"), "format": "jpeg", "data": jpeg.tolist()}))
    text = '{"answer":"B","nav_hint":{"action":"turn_left"},"note":"ça va — 北"}'
    out.append(("string_json", "std_msgs/msg/String", True, T["std_msgs/msg/String"](data=text),
                {"data": text}))
    out.append(("string_empty", "std_msgs/msg/String", True, T["std_msgs/msg/String"](data=""),
                {"data": ""}))
    pcov = np.arange(36, dtype=np.float64) * 0.5
    tcov = -np.arange(36, dtype=np.float64) * 0.25
    out.append(("odometry", "nav_msgs/msg/Odometry", True,
                T["nav_msgs/msg/Odometry"](
                    header=header(1700000000, 250000000, "odom"), child_frame_id="base_link",
                    pose=T["geometry_msgs/msg/PoseWithCovariance"](
                        pose=T["geometry_msgs/msg/Pose"](
                            position=T["geometry_msgs/msg/Point"](x=1.5, y=-2.25, z=10.0),
                            orientation=T["geometry_msgs/msg/Quaternion"](
                                x=0.0, y=0.0, z=0.3826834323650898, w=0.9238795325112867)),
                        covariance=pcov),
                    twist=T["geometry_msgs/msg/TwistWithCovariance"](
                        twist=T["geometry_msgs/msg/Twist"](linear=vec3(0.5, 0.0, 0.1),
                                                           angular=vec3(0.0, 0.0, -0.2)),
                        covariance=tcov)),
                {"header": hdr_json(1700000000, 250000000, "odom"), "child_frame_id": "base_link",
                 "position": [1.5, -2.25, 10.0],
                 "orientation": [0.0, 0.0, 0.3826834323650898, 0.9238795325112867],
                 "pose_covariance": pcov.tolist(), "linear": [0.5, 0.0, 0.1],
                 "angular": [0.0, 0.0, -0.2], "twist_covariance": tcov.tolist()}))
    out.append(("twist_stamped", "geometry_msgs/msg/TwistStamped", True,
                T["geometry_msgs/msg/TwistStamped"](
                    header=header(42, 1, "base_link"),
                    twist=T["geometry_msgs/msg/Twist"](linear=vec3(0.3, 0.0, 0.0),
                                                       angular=vec3(0.0, 0.0, 0.7853981633974483))),
                {"header": hdr_json(42, 1, "base_link"), "linear": [0.3, 0.0, 0.0],
                 "angular": [0.0, 0.0, 0.7853981633974483]}))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="perception/tests/fixtures/ros")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    index = []
    for name, typ, little, msg, fields in messages():
        raw = bytes(TS.serialize_cdr(msg, typ, little_endian=little))
        TS.deserialize_cdr(raw, typ)  # read back as a check
        (out / f"{name}.cdr").write_bytes(raw)
        index.append({"name": name, "file": f"{name}.cdr", "type": typ,
                      "rihs01": TS.hash_rihs01(typ), "little_endian": little, "len": len(raw),
                      "fields": fields})
    meta = {"generator": "tools/fixtures_ros_cdr.py", "store": "ROS2_JAZZY",
            "rosbags": importlib.metadata.version("rosbags"), "messages": index}
    (out / "messages.json").write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n")
    for m in index:
        print(f"{m['file']}: {m['type']} {m['len']} bytes")


if __name__ == "__main__":
    main()

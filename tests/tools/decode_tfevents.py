#!/usr/bin/env python3
"""Decode TensorBoard event files without TensorFlow or protobuf (stdlib only).

An independent check of traincb's TensorBoard writer: it reads every event file under LOGDIR,
verifies both masked CRC-32C checksums of every TFRecord, parses the Event protobuf wire format
by hand, checks that each file starts with file_version "brain.Event:2", and prints

    {"<run>": {"<tag>": [[step, value], ...]}}

where <run> is the directory holding the files, relative to LOGDIR ("." for LOGDIR itself), and
the points appear in file-name order, then file order (as TensorBoard's legacy loader reads
them). Non-finite values are printed as the strings "NaN", "Infinity", "-Infinity" so the output
stays strict JSON. With --session-logs, SessionLog events are listed under the tag
"__session_log__" as [step, status].

Exit status: 0 on success, 1 on a malformed file (the message names the file and the offset).
"""

import json
import math
import os
import struct
import sys


def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


class FormatError(Exception):
    pass


def read_varint(buf, pos):
    result = 0
    shift = 0
    while True:
        if pos >= len(buf):
            raise FormatError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise FormatError("varint longer than 10 bytes")


def fields(buf):
    """Yields (field_number, wire_type, value) of a serialized message."""
    pos = 0
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(buf, pos)
        elif wire == 1:
            if pos + 8 > len(buf):
                raise FormatError("truncated fixed64")
            value = buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            length, pos = read_varint(buf, pos)
            if pos + length > len(buf):
                raise FormatError("truncated length-delimited field")
            value = buf[pos:pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise FormatError("truncated fixed32")
            value = buf[pos:pos + 4]
            pos += 4
        else:
            raise FormatError("unsupported wire type %d" % wire)
        yield number, wire, value


def to_int64(u):
    return u - (1 << 64) if u >= (1 << 63) else u


def parse_event(data):
    event = {"wall_time": 0.0, "step": 0, "file_version": None, "values": [], "session_log": None}
    for number, wire, value in fields(data):
        if number == 1 and wire == 1:
            event["wall_time"] = struct.unpack("<d", value)[0]
        elif number == 2 and wire == 0:
            event["step"] = to_int64(value)
        elif number == 3 and wire == 2:
            event["file_version"] = value.decode("utf-8")
        elif number == 5 and wire == 2:  # Summary
            for vn, vw, vval in fields(value):
                if vn != 1 or vw != 2:
                    continue
                tag, simple = None, None
                for fn, fw, fval in fields(vval):  # Summary.Value
                    if fn == 1 and fw == 2:
                        tag = fval.decode("utf-8")
                    elif fn == 2 and fw == 5:
                        simple = struct.unpack("<f", fval)[0]
                if tag is not None and simple is not None:
                    event["values"].append((tag, simple))
        elif number == 7 and wire == 2:  # SessionLog
            status = 0
            for fn, fw, fval in fields(value):
                if fn == 1 and fw == 0:
                    status = fval
            event["session_log"] = status
    return event


def read_records(path):
    with open(path, "rb") as f:
        data = f.read()
    pos = 0
    while pos < len(data):
        if pos + 12 > len(data):
            raise FormatError("%s: truncated record header at offset %d" % (path, pos))
        header = data[pos:pos + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[pos + 8:pos + 12])
        if length_crc != masked_crc32c(header):
            raise FormatError("%s: bad length CRC at offset %d" % (path, pos))
        start = pos + 12
        if start + length + 4 > len(data):
            raise FormatError("%s: truncated record at offset %d" % (path, pos))
        payload = data[start:start + length]
        (data_crc,) = struct.unpack("<I", data[start + length:start + length + 4])
        if data_crc != masked_crc32c(payload):
            raise FormatError("%s: bad data CRC at offset %d" % (path, pos))
        yield pos, payload
        pos = start + length + 4


def json_number(v):
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "Infinity" if v > 0 else "-Infinity"
    return v


def decode_logdir(logdir, session_logs=False):
    runs = {}
    for dirpath, dirnames, filenames in os.walk(logdir):
        dirnames.sort()
        files = sorted(n for n in filenames if "tfevents" in n)
        if not files:
            continue
        run = os.path.relpath(dirpath, logdir).replace(os.sep, "/")
        tags = runs.setdefault(run, {})
        for name in files:
            path = os.path.join(dirpath, name)
            first = True
            for offset, payload in read_records(path):
                try:
                    event = parse_event(payload)
                except (FormatError, UnicodeDecodeError) as e:
                    raise FormatError("%s: bad event at offset %d: %s" % (path, offset, e))
                if first and event["file_version"] != "brain.Event:2":
                    raise FormatError("%s: first event is not file_version 'brain.Event:2'" % path)
                first = False
                for tag, value in event["values"]:
                    tags.setdefault(tag, []).append([event["step"], json_number(value)])
                if session_logs and event["session_log"] is not None:
                    tags.setdefault("__session_log__", []).append([event["step"], event["session_log"]])
    return runs


def main(argv):
    args = [a for a in argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.stderr.write("usage: decode_tfevents.py [--session-logs] LOGDIR\n")
        return 2
    try:
        runs = decode_logdir(args[0], session_logs="--session-logs" in argv[1:])
    except FormatError as e:
        sys.stderr.write("decode_tfevents: %s\n" % e)
        return 1
    json.dump(runs, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))

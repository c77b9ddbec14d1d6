#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (fuzz/corpus/<target>/) from the
test vector files, so that every run starts from the well-formed and the
bad cases of the spec. Run from clientsdk/c after the vectors change."""
import glob, os, re, sys

here = os.path.dirname(os.path.abspath(__file__))
root = os.path.join(here, "..")
vectors = os.path.join(root, "..", "..", "protocol", "testdata", "vectors")
targets = {"frame": ["frame", "frame_s2c_0", "frame_c2s_0"], "handshake": ["m1", "m2", "m3", "m4"],
           "envelope": ["envelope"], "bundle": ["bundle"], "keyfile": ["file"], "window": ["binary"],
           "event": ["record"], "checkpoint": ["checkpoint"]}
text_fields = {"window": ["text"]}
for t in list(targets) + ["state", "client"]:
    d = os.path.join(root, "fuzz", "corpus", t)
    os.makedirs(d, exist_ok=True)
    for f in glob.glob(os.path.join(d, "*")):
        os.remove(f)
for path in sorted(glob.glob(os.path.join(vectors, "*.txt"))):
    name = os.path.basename(path)[:-4]
    fields = [l.split(": ", 1) for l in open(path).read().splitlines() if ": " in l and not l.startswith("#")]
    for t, want in targets.items():
        for i, (k, v) in enumerate(fields):
            if k in want and v and re.fullmatch(r"[0-9a-f]*", v):
                open(os.path.join(root, "fuzz", "corpus", t, f"{name}-{i}"), "wb").write(bytes.fromhex(v))
    for t, want in text_fields.items():
        for i, (k, v) in enumerate(fields):
            if k in want:
                open(os.path.join(root, "fuzz", "corpus", t, f"{name}-text-{i}"), "wb").write(v.encode())
for t in ["state", "client"]:  # no vectors: one empty seed
    open(os.path.join(root, "fuzz", "corpus", t, "empty"), "wb").close()

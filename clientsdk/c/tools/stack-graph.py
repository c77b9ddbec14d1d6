#!/usr/bin/env python3
"""Worst-case stack of entry points, from GCC's -fcallgraph-info=su files.

    stack-graph.py DIR ROOT...

Reads every DIR/*.ci (one per compiled file: each function's frame size
and its calls) and prints, for each ROOT, the largest sum of frames along
any call path from it, and that path. Calls through function pointers
(the crypto backend, the I/O callbacks, the events) are the placeholder
__indirect_call and count 0 here: add the backend's own peak (for the
libsodium backend the stack-painting test measures it with everything).
Recursion is reported as an error: the core has none.
"""
import glob, re, sys

def load(d):
    frames, edges = {}, {}
    for path in glob.glob(d + "/*.ci"):
        for line in open(path):
            m = re.match(r'node: \{ title: "([^"]+)" label: "[^\\"]*\\n[^\\"]*\\n(\d+) bytes \(([\w,]+)\)', line)
            if m:
                frames[m.group(1)] = (int(m.group(2)), m.group(3))
                continue
            m = re.match(r'node: \{ title: "([^"]+)"', line)
            if m:
                frames.setdefault(m.group(1), None)
                continue
            m = re.match(r'edge: \{ sourcename: "([^"]+)" targetname: "([^"]+)"', line)
            if m:
                edges.setdefault(m.group(1), set()).add(m.group(2))
    return frames, edges

def resolve(name, frames):
    """An external node names a function defined in another file: find it."""
    if frames.get(name) is not None:
        return name
    for t, v in frames.items():
        if v is not None and (t == name or t.endswith(":" + name)):
            return t
    return name

def worst(root, frames, edges, seen=()):
    root = resolve(root, frames)
    if root in seen:
        raise SystemExit("recursion through " + root)
    own = frames.get(root)
    size = own[0] if own else 0
    if own and own[1] not in ("static", "dynamic,bounded"):
        print("warning: %s has a %s frame" % (root, own[1]), file=sys.stderr)
    best, path = 0, []
    for callee in sorted(edges.get(root, ())):
        s, p = worst(callee, frames, edges, seen + (root,))
        if s > best:
            best, path = s, p
    return size + best, [(root.split(":")[-1], size)] + path

def main():
    frames, edges = load(sys.argv[1])
    for root in sys.argv[2:]:
        total, path = worst(root, frames, edges)
        print("%6d bytes  %s" % (total, root))
        print("              " + " > ".join("%s %d" % p for p in path if p[1] or p[0] == root))

main()

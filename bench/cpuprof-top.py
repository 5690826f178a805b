#!/usr/bin/env python3
"""Self time by function of a V8 .cpuprofile (node --cpu-prof), largest first.

    python3 bench/cpuprof-top.py PROFILE.cpuprofile [N]
"""
import collections
import json
import sys

profile = json.load(open(sys.argv[1]))
top = int(sys.argv[2]) if len(sys.argv) > 2 else 40
nodes = {n["id"]: n for n in profile["nodes"]}
self_us = collections.Counter()
for sample, dt in zip(profile["samples"], profile["timeDeltas"]):
    self_us[sample] += dt
by_fn = collections.Counter()
for node_id, us in self_us.items():
    cf = nodes[node_id]["callFrame"]
    by_fn[(cf["functionName"] or "(anonymous)", cf["url"].split("/")[-1], cf["lineNumber"] + 1)] += us
total = sum(by_fn.values())
print(f"total {total / 1000:.1f} ms sampled")
for (fn, url, line), us in by_fn.most_common(top):
    print(f"{us / 1000:9.1f} ms {100 * us / total:5.1f}%  {fn}  {url}:{line}")

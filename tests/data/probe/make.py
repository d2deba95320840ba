"""Regenerates the small fixtures of tests/cli/cases/probe-*.t and eval-*.t:
  /usr/bin/python3 tests/data/probe/make.py tests/data/probe
Features [B, K=4, D=8] with labels (3 classes a, b, c), the same without
labels, features of dimension 16, two passes of a looping producer
(aim.epoch 0 and 1), a logits stream, and two heads of
dimension 8 (one for classes a, b, c; one for x, y, z)."""
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "ref"))
from probe_ref import st_write, stream_write  # noqa: E402

out = sys.argv[1]
rng = np.random.default_rng(11)
abc = json.dumps(["a", "b", "c"])


def feats(B, K, D, labels=True, classes=abc):
    t = {"features": rng.normal(0, 1, (B, K, D)).astype(np.float32)}
    if labels:
        t["label"] = rng.integers(0, 3, B).astype(np.int64)
    return t, {"aim.classes": classes}


stream_write(os.path.join(out, "feats.aimt"), [feats(5, 4, 8), feats(3, 4, 8)])
stream_write(os.path.join(out, "unlabelled.aimt"), [feats(4, 4, 8, labels=False)])
stream_write(os.path.join(out, "dim16.aimt"), [feats(4, 4, 16)])
stream_write(os.path.join(out, "xyz.aimt"), [feats(4, 4, 8, classes=json.dumps(["x", "y", "z"]))])
# a looping producer's output: two passes, marked by aim.epoch
t0, m0 = feats(6, 4, 8)
t1, _ = feats(6, 4, 8)
stream_write(os.path.join(out, "loop.aimt"), [(t0, dict(m0, **{"aim.epoch": "0"})),
                                              (t1, {"aim.epoch": "1"})])
stream_write(os.path.join(out, "logits.aimt"), [({
    "logits": np.array([[3, 1, 0], [0, 2, 1], [1, 0, 0], [0, 0, 5]], np.float32),
    "label": np.array([0, 1, 2, 2], np.int64)}, {"aim.classes": abc})])


def head(classes):
    D, C, Q = 8, 3, 1
    t = {"head.bn.running_mean": np.zeros(D, np.float32),
         "head.bn.running_var": np.ones(D, np.float32),
         "head.cls_token": rng.normal(0, 0.5, (1, Q, D)).astype(np.float32),
         "head.k.weight": rng.normal(0, 0.3, (D, D)).astype(np.float32),
         "head.v.weight": rng.normal(0, 0.3, (D, D)).astype(np.float32),
         "head.linear.weight": rng.normal(0, 0.3, (C, D)).astype(np.float32)}
    meta = {"aim.head": json.dumps({"probe": "attentive", "dim": D, "classes": C,
                                    "heads": 2, "queries": Q}),
            "aim.classes": classes}
    return t, meta


st_write(os.path.join(out, "head_abc.safetensors"), *head(abc))
st_write(os.path.join(out, "head_xyz.safetensors"), *head(json.dumps(["x", "y", "z"])))

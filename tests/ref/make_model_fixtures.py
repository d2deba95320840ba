#!/usr/bin/python3
"""Regenerate the committed model fixtures in tests/data/model/ from the
PyTorch reference (tests/ref/aim_ref.py), so the parity tests also run on
machines without torch:

  tiny/        random model (dim 32, 2 blocks, 2 heads, 3x5 grid, patch 4, no
               biases) as model.safetensors (+ aim.config), backbone.pth +
               head.pth, hf/ (config.json + pytorch_model.bin); a U8 patches
               stream; ref.safetensors with torch's outputs
  train.safetensors  masks and gradients for tests/unit/test_model_train.c
  train_v2.safetensors  the same for an AIMv2 trunk (tests/ref/aimv2_ref.py)

Run from the repository root: /usr/bin/python3 tests/ref/make_model_fixtures.py
"""
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "data", "model")
ref = os.path.join(here, "aim_ref.py")
os.makedirs(out, exist_ok=True)
subprocess.check_call([sys.executable, ref, "gen", os.path.join(out, "tiny"), "--dim", "32",
                       "--depth", "2", "--heads", "2", "--rows", "3", "--cols", "5",
                       "--batch", "5", "--seed", "3"])
subprocess.check_call([sys.executable, ref, "train-fixture", os.path.join(out, "train.safetensors")])
subprocess.check_call([sys.executable, os.path.join(here, "aimv2_ref.py"), "train-fixture",
                       os.path.join(out, "train_v2.safetensors")])

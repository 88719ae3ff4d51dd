"""URLB-style unsupervised RL benchmark on the DeepMind Control Suite."""

import os

# MuJoCo renders headless only through EGL on typical servers; a user's own setting wins.
os.environ.setdefault("MUJOCO_GL", "egl")

__version__ = "0.1.0"

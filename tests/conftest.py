import os

# Offscreen MuJoCo rendering: EGL by default (CI installs the Mesa EGL packages); OSMesa works too.
os.environ.setdefault("MUJOCO_GL", "egl")

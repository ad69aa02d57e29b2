"""Where generated files go: ``$BMN_EDGE_WORK`` if set, else ``models/work/`` in this
checkout (git-ignored). Data, checkpoints, the 148 MB standard exports and the benchmark
models all live below it; nothing in it is ever committed.

Also where the project's one Python reference lives: ``tests/reference/bmn_reference.py``
(the BM mask, candidates, pairing, Soft-NMS, the video-level path), which ``bmn.py`` and
``evaluate.py`` use instead of keeping their own copies (``reference()``)."""

import importlib.util
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
WORK = os.environ.get("BMN_EDGE_WORK") or os.path.join(HERE, "work")
REFERENCE = os.path.join(HERE, "..", "tests", "reference", "bmn_reference.py")


def _load_once(name: str, path: str):
    mod = sys.modules.get(name)
    if mod is None:
        spec = importlib.util.spec_from_file_location(name, path)
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
    return mod


def reference():
    """The module ``tests/reference/bmn_reference.py``, loaded by path once (numpy only)."""
    return _load_once("bmn_reference", REFERENCE)


def pixels_reference():
    """The module ``tests/reference/pixels_reference.py`` (the pixel pipeline's numpy
    specification: y4m decoding, preprocessing), loaded by path once."""
    return _load_once("pixels_reference", os.path.join(HERE, "..", "tests", "reference", "pixels_reference.py"))

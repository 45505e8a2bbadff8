"""Serving interop: a pack as a llama.cpp control vector, and a control vector as a pack.

``export_control_vector`` writes the GGUF that llama.cpp's ``--control-vector`` reads (the pack
under ``op="add"``, ``positions="all"``); ``import_control_vector`` turns such a file, or a repeng
``ControlVector``, into a v2 pack. docs/interop.md has the layer mapping and what is kept and lost.
This package imports ``l2v_hub.pack``, never the other way round (``Pack.to_control_vector``
imports it when called).
"""

from .export import ExportReport, export_control_vector, push_vectors, semantics
from .gguf_file import ARCH, ControlVectorFile, read_control_vector, write_control_vector
from .imports import IMPORTED_STRENGTH, import_control_vector

__all__ = [
    "ARCH",
    "IMPORTED_STRENGTH",
    "ControlVectorFile",
    "ExportReport",
    "export_control_vector",
    "import_control_vector",
    "push_vectors",
    "read_control_vector",
    "semantics",
    "write_control_vector",
]

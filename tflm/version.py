"""The tflm version (kept import-free so setup.cfg can read it statically)."""

__version__ = "0.1.0"

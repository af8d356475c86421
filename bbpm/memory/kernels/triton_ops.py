"""Triton kernels (CUDA only). Importing this module without triton raises ImportError;
use :data:`bbpm.memory.kernels.HAS_TRITON` style checks before calling."""

from __future__ import annotations

import triton  # noqa: F401  (ImportError here is the signal that triton is absent)

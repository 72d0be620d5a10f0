"""Residual vector quantization: quantize (runtime) and fit (export). numpy only."""

from .quantize import code_norms, quantize

__all__ = ["code_norms", "quantize"]

"""Neural Audio Tokenizer (NAT, "Tim's Ears"): music and sound as tokens an LLM can read.

    from neural_audio_tokenizer import Tokenizer
    tok = Tokenizer.load()              # built-in pack, CPU
    frames = list(tok.encode("song.flac"))
"""

from __future__ import annotations

__version__ = "1.0.0"
__all__ = ["Frame", "LineOptions", "Tokenizer", "expand", "write_ndjson", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import neural_audio_tokenizer` stays cheap and the export side can import
    # its own modules without starting onnxruntime.
    if name == "Tokenizer":
        from .runtime.tokenizer import Tokenizer

        return Tokenizer
    if name in ("Frame", "LineOptions", "expand"):
        from .runtime import records

        return getattr(records, name)
    if name == "write_ndjson":
        from .runtime.ndjson import write_ndjson

        return write_ndjson
    raise AttributeError(name)

"""Neural Audio Tokenizer (NAT, "Tim's Ears"): music and sound as tokens an LLM can read.

    from neural_audio_tokenizer import Tokenizer, write_ndjson
    tok = Tokenizer.load()              # built-in pack, CPU
    stream = tok.stream("song.flac")    # a TokenStream: header, frames, stats (all typed)
    frames = list(stream.frames)

The library is ``runtime/`` (torch-free, in pipeline order); the command-line tools are
``cli/``; errors shared by both are in ``errors.py``. docs/architecture.md has the map.
"""

from __future__ import annotations

__version__ = "1.0.0"
__all__ = ["Frame", "Header", "LineOptions", "Stats", "TokenStream", "Tokenizer", "expand", "write_ndjson", "__version__"]


def __getattr__(name: str):
    # Lazy, so `import neural_audio_tokenizer` stays cheap and the export side can import
    # its own modules without starting onnxruntime.
    if name == "Tokenizer":
        from .runtime.tokenizer import Tokenizer

        return Tokenizer
    if name in ("Frame", "LineOptions", "expand"):
        from .runtime import records

        return getattr(records, name)
    if name in ("Header", "Stats"):
        from .runtime import header

        return getattr(header, name)
    if name == "TokenStream":
        from .runtime.stream import TokenStream

        return TokenStream
    if name == "write_ndjson":
        from .runtime.ndjson import write_ndjson

        return write_ndjson
    raise AttributeError(name)

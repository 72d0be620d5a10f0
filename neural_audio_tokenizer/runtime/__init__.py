"""The torch-free library: audio in, token streams out (numpy, onnxruntime, soundfile, soxr).

In pipeline order (docs/architecture.md draws the map):

- ``audio``: bytes -> mono float32 blocks (soundfile; raw PCM fallback), ``stdin``: FS-separated parts
- ``splitter``, ``pcm``, ``piped``: pipes read as they arrive (parts on the fly, raw/WAV decoded incrementally)
- ``framing``: fixed chunks with context; pooling to pack frames
- ``features``: resample -> chunk -> encoder -> pooled features (FeaturePipeline)
- ``session``: onnxruntime sessions, providers and threads; ``pack`` (+ ``onnx_check``): a verified pack
- ``tokenizer``: the public Tokenizer: pack + pipeline + RVQ -> TokenStream; ``live``: its push API (LiveStream)
- ``records``: Frame, LineOptions, dense/delta/RLE lines; ``stream``: TokenStream (header, frames, stats)
- ``header``: the typed Header and Stats, built (make_header, make_stats) and read/written as JSON there
- ``ndjson``, ``formats``: a stream rendered; ``reader``: token files read back into streams
- ``sinks``: stdout, files and folders, written atomically

Nothing here imports the command-line tools (``cli/``), the export side or torch.
"""

"""The torch-free runtime: audio in, NDJSON tokens out (numpy, onnxruntime, soundfile, soxr)."""

"""Everything that gets samples in: bytes, files, pipes and their parts, raw PCM, and the limits.

- ``limits``: the rates and channel counts NAT reads, and the one OS-error mapping;
- ``audio``: files and bytes decoded with soundfile into mono blocks (``AudioSource``);
- ``pcm``: the one raw PCM decoder (raw s16le, a streamed WAV's samples);
- ``riff``: the one RIFF/RF64 header reader;
- ``splitter``: the one FS splitter for several files on one pipe;
- ``piped``: a pipe read as it arrives, part by part (``PipedSource``);
- ``item``: :class:`~.item.Input`, one input as a command names it, opened into one of those sources.

Nothing is imported here, so a command that only needs ``stderr_guard`` or the limits does
not load a decoder.
"""


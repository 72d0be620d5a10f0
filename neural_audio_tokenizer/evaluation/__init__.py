"""Evaluation of a pack's tokens, torch-free: any pack, built-in or exported, is measured the
same way, with only the runtime (and, for the rendered set, mido and FluidSynth).

- ``perturbations.py``: the everyday changes (gain, resampling, mono, MP3, OGG Vorbis, shift,
  noise, dither), one implementation each;
- ``measures.py``: measures on token arrays (histograms, nearest neighbours, mutual
  information, utilization, halves, change rates);
- ``rendered.py``: the rendered General MIDI sets, their evaluation and report;
- ``music.py``: the same questions on a folder of the user's music;
- ``main.py``: ``nat-export eval`` (``python -m neural_audio_tokenizer.evaluation``).

It builds on the library (``runtime/``, ``packs/``) through the public ``Tokenizer`` API and
sits below ``export/``: the General MIDI renderer (export/corpus.py) is imported only inside
the functions that render.
"""

"""``python -m neural_audio_tokenizer.evaluation``: ``nat-export eval`` (evaluation/main.py)."""

import sys

from .main import main

sys.exit(main())

"""``python -m neural_audio_tokenizer`` is ``nat``."""

import sys

from .runtime.cli import main

sys.exit(main())

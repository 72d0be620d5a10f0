"""``python -m neural_audio_tokenizer`` is ``nat``."""

import sys

from .cli.main import main

sys.exit(main())

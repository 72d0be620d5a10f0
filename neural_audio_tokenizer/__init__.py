"""Neural Audio Tokenizer (NAT, "Tim's Ears"): music and sound as tokens an LLM can read."""

__version__ = "1.0.0"

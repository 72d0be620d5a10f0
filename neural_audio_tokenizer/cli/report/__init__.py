"""``nat --all-outputs``: token files, pictures, metrics and a Markdown report per input."""

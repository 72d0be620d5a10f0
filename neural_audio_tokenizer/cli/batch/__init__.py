"""``nat batch``: a whole library with worker processes (main.py), one job per file (job.py), found by library.py."""

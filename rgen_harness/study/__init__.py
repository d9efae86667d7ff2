"""QR-vs-QCR studies: a typed config, a resumable runner over the `lm_eval` command line, and
the report (Markdown leaderboard, CSV, JSON, PNG plots) computed from the logged samples."""

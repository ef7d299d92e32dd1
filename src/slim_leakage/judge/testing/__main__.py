"""``python -m slim_leakage.judge.testing``: serve the local protocol server until interrupted."""

from .server import main

if __name__ == "__main__":
    raise SystemExit(main())

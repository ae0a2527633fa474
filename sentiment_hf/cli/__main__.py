"""``python -m sentiment_hf.cli``: the same as the ``sentiment`` console script."""

from sentiment_hf.cli import main

main()

"""``python -m personalization``: the cardline CLI."""

from personalization.cli import main

main()

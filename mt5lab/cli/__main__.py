"""``python -m mt5lab.cli``: the same as the ``mt5lab`` console script."""

from mt5lab.cli import main

main()

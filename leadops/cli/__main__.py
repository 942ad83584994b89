"""`python -m leadops.cli`: the leadops command."""

from leadops.cli import main

main()

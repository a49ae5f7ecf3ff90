"""`python -m egogrpo`."""

from egogrpo.cli.entry import main

main()

"""`python -m learnflow ...` is the `learnflow` command."""

from learnflow.cli import main

main()

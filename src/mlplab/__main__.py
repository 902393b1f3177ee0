"""``python -m mlplab`` is the same as the ``mlplab`` command."""

from mlplab.cli import main

if __name__ == "__main__":
    main()

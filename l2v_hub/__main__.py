"""``python -m l2v_hub``: the ``l2v-hub`` command line."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="l2v-hub")

"""One way to make the experiments' figures: a headless matplotlib figure, saved on exit."""
from __future__ import annotations

import contextlib


@contextlib.contextmanager
def figure(path: str, size=(5.5, 4.5), grid=(1, 1), dpi=120):
    """``with figure("x.png") as (fig, ax): ...`` draws and saves ``x.png``; a grid gives an array of axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(*grid, figsize=size)  # one Axes, or an array of the grid's shape (squeezed)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)

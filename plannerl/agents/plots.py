"""PNG figures of evaluation results. matplotlib is imported here only, with the Agg backend,
so nothing needs a display and `import plannerl` stays fast."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from plannerl.atomic import write_bytes


def save_matrix_png(path: str | Path, rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float | None]],
                    *, title: str = "Success rate", row_title: str = "trained on", column_title: str = "evaluated on") -> Path:
    """A heatmap of a rows x columns matrix of values in [0, 1], each cell labelled.

    Cells without a value (None) are left blank. The PNG carries no timestamp or software
    metadata, so the same matrix gives the same bytes.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = [[float("nan") if v is None else float(v) for v in row] for row in values]
    width = 1.6 + 1.1 * max(1, len(columns))
    height = 1.4 + 0.6 * max(1, len(rows))
    figure, axes = plt.subplots(figsize=(width, height), dpi=100)
    try:
        image = axes.imshow(grid, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        axes.set_xticks(range(len(columns)), labels=list(columns), rotation=30, ha="right")
        axes.set_yticks(range(len(rows)), labels=list(rows))
        axes.set_xlabel(column_title)
        axes.set_ylabel(row_title)
        axes.set_title(title)
        for i, row in enumerate(values):
            for j, value in enumerate(row):
                if value is not None:
                    axes.text(j, i, f"{value:.2f}", ha="center", va="center", color="white" if value < 0.6 else "black")
        figure.colorbar(image, ax=axes)
        figure.tight_layout()
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
    finally:
        plt.close(figure)
    return write_bytes(path, buffer.getvalue())

"""Text samples as a picture (columns of words) and as plain text beside it."""

from __future__ import annotations

from pathlib import Path

from gen_jax.viz._pyplot import pyplot


def save_text_columns(columns: dict[str, list[str]], path: str | Path, *, title: str | None = None) -> Path:
    """Writes ``{heading: lines}`` as side-by-side columns to ``path`` (PNG) and the same text to
    ``path`` with suffix ``.txt``; returns the PNG path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = max((len(v) for v in columns.values()), default=0)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(2.6 * max(len(columns), 1), 0.25 * rows + 1.0))
    ax.axis("off")
    for i, (heading, lines) in enumerate(columns.items()):
        ax.text(i / max(len(columns), 1), 1.0, "\n".join([heading, ""] + list(lines)), va="top", ha="left",
                family="monospace", fontsize=9, transform=ax.transAxes)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    text = "\n\n".join(f"# {h}\n" + "\n".join(lines) for h, lines in columns.items())
    path.with_suffix(".txt").write_text(text + "\n", encoding="utf-8")
    return path

"""Learning-curve PNG of a run, from its ``metrics.csv``."""

from __future__ import annotations

from pathlib import Path

from drl_ros.core.metrics import read_metrics


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Plot training and evaluation return, and success rate where the env reports it."""
    import matplotlib

    matplotlib.use("Agg")  # headless: robots and CI machines have no display
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    if not (run_dir / "metrics.csv").exists():
        raise ValueError(f"{run_dir} has no metrics.csv: is it a drl_ros run directory?")
    series = read_metrics(run_dir)
    has_success = "eval/success_rate" in series or "train/success_rate" in series
    fig, axes = plt.subplots(1, 2 if has_success else 1, figsize=(11 if has_success else 6, 4), squeeze=False)
    ax = axes[0][0]
    for tag, label, style in (("train/episode_return", "training episodes (mean of last 20)", "-"),
                              ("eval/mean_return", "evaluation", "o-")):
        if tag in series:
            ax.plot(*series[tag], style, label=label)
    ax.set_xlabel("env steps")
    ax.set_ylabel("episode return")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    if has_success:
        ax = axes[0][1]
        for tag, label, style in (("train/success_rate", "training (last 20 episodes)", "-"),
                                  ("eval/success_rate", "evaluation", "o-")):
            if tag in series:
                steps, values = series[tag]
                ax.plot(steps, [100 * v for v in values], style, label=label)
        ax.set_xlabel("env steps")
        ax.set_ylabel("success rate (%)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right")
    fig.suptitle(run_dir.name)
    fig.tight_layout()
    out_path = Path(out) if out is not None else run_dir / "learning_curve.png"
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path

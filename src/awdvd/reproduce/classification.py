"""The classification items of the reproduction: Tables 1-2 and Fig. 3-6, each a function of the
:class:`~awdvd.reproduce.experiments.Reproduction` whose models are trained and evaluated (``job``), returning
its part of results.json and writing its figure."""

from __future__ import annotations

import numpy as np

from ..learn.model import build_network, network_config, network_cost
from ..learn.recipes import get_variant
from . import figures
from .paper import COMPARISON_ARCHITECTURES, FIGURES, PAPER, network_label

__all__ = ["scores", "oscillation", "table1", "table2", "fig3", "fig4", "fig5", "fig6"]


def scores(summary: dict) -> dict:
    """Accuracy and macro precision / recall / F1 of an evaluation summary."""
    return {"accuracy": summary["accuracy"], "precision": summary["macro"]["precision"],
            "recall": summary["macro"]["recall"], "f1": summary["macro"]["f1"]}


def table1(job) -> dict:
    """Table 1: DelpNet with and without the bg class (one budget), and the main DelpNet."""
    rows = {}
    for variant in ("no-bg", "delpnet"):
        run = job.comparison[variant]
        rows[variant] = {"paper": PAPER["table1"][variant], "awdvd": scores(run.summary),
                         "model": run.key, "conditions": job.conditions(run)}
    main = job.runs["main"]
    rows["main"] = {"paper": PAPER["table1"]["delpnet"], "awdvd": scores(main.summary), "model": "main",
                    "conditions": job.conditions(main)}
    return {"rows": rows}


def table2(job) -> dict:
    """Table 2: DelpNet and the four architectures (one budget), with the published networks' sizes."""
    import torch

    rows = {}
    for name in ("vgg16", "inception_v3", "resnet18", "mobilenet_v2", "delpnet"):
        run = job.architectures[name]
        variant = get_variant(name)
        args = {**variant.args, "n_classes": len(run.model.class_levels)}
        with torch.device("meta"):  # the published network's size, whatever network_args were trained
            published = network_cost(build_network(variant.architecture,
                                                   network_config(variant.architecture, args)))
        rows[name] = {"paper": PAPER["table2"][name], "awdvd": scores(run.summary),
                      "params_published": published["parameters"], "macs_per_patch": published["macs"],
                      "params_trained": job.run_record(run)["parameters"], "model": run.key,
                      "conditions": job.conditions(run)}
    return {"rows": rows}


def fig3(job) -> dict:
    """Fig. 3: the main DelpNet's confusion matrix, and how many of its errors are one level off."""
    main = job.runs["main"]
    s = main.summary
    figures.confusion_png(s, job.folder / FIGURES["fig3"],
                          title=f"main DelpNet: accuracy {s['accuracy']:.1%} (test, n = {s['n']})")
    confusion = np.asarray(s["confusion"])
    levels = np.asarray(s["labels"])
    wrong = confusion.copy()
    np.fill_diagonal(wrong, 0)
    true_level, predicted_level = np.meshgrid(levels, levels, indexing="ij")
    adjacent = (true_level >= 0) & (predicted_level >= 0) & (np.abs(true_level - predicted_level) == 1)
    n_wrong = int(wrong.sum())
    return {"paper": PAPER["fig3"], "awdvd": {**scores(s), "within_one_level": s["within_one_level"],
                                              "mean_abs_level_error": s["mean_abs_level_error"],
                                              "errors": n_wrong,
                                              "errors_adjacent_level": int(wrong[adjacent].sum()),
                                              "errors_adjacent_fraction": (wrong[adjacent].sum() / n_wrong
                                                                           if n_wrong else None),
                                              "confusion": s["confusion"], "class_names": s["class_names"]},
            "figure": FIGURES["fig3"], "model": "main", "conditions": job.conditions(main)}


def oscillation(history: list) -> dict:
    """How much a run's validation loss oscillates from epoch to epoch (Fig. 4)."""
    loss = np.array([h["val_loss"] for h in history], dtype=float)
    steps = np.diff(loss)
    return {"val_loss": loss.tolist(), "final_val_loss": float(loss[-1]) if len(loss) else None,
            "min_val_loss": float(loss.min()) if len(loss) else None,
            "mean_abs_change": float(np.abs(steps).mean()) if len(steps) else None,
            "relative_mean_abs_change": float(np.abs(steps).mean() / loss.mean()) if len(steps) else None,
            "increases": int(np.sum(steps > 0))}


def fig4(job) -> dict:
    """Fig. 4: validation loss with BatchNorm momentum (Keras) 0.60 against 0.99 (the BN study's runs, trained
    without BatchNorm recalibration)."""
    study = job.bn_study
    runs = {"BN momentum 0.60 (Keras; DelpNet)": study["delpnet"],
            "BN momentum 0.99 (Keras default)": study["bn-momentum-0.99"]}
    figures.curves_png({label: run.history for label, run in runs.items()}, job.folder / FIGURES["fig4"])
    return {"paper": PAPER["fig4"],
            "awdvd": {"0.60": oscillation(study["delpnet"].history),
                      "0.99": oscillation(study["bn-momentum-0.99"].history)},
            "figure": FIGURES["fig4"], "models": [run.key for run in runs.values()],
            "conditions": {"0.60": job.conditions(study["delpnet"]),
                           "0.99": job.conditions(study["bn-momentum-0.99"])}}


def _cmc_item(job, runs: dict, figure: str, title: str, paper_top1: dict) -> dict:
    figures.cmc_png({network_label(name, job.scale.network_args): run.summary["cmc"] for name, run in runs.items()},
                    job.folder / figure, title=title)
    return {"paper": {"top1": paper_top1},
            "awdvd": {name: {"cmc": run.summary["cmc"], "top1": run.summary["cmc"][0],
                             "top3": run.summary["cmc"][min(2, len(run.summary["cmc"]) - 1)]}
                      for name, run in runs.items()},
            "figure": figure, "models": {name: run.key for name, run in runs.items()},
            "conditions": {name: job.conditions(run) for name, run in runs.items()}}


def fig5(job) -> dict:
    """Fig. 5: cumulative match curves of the strategies (DelpNet, without bg, plain)."""
    runs = {name: job.comparison[name] for name in ("delpnet", "no-bg", "plain")}
    return _cmc_item(job, runs, FIGURES["fig5"], "Fig. 5: strategies (test set)", PAPER["fig5"]["top1"])


def fig6(job) -> dict:
    """Fig. 6: cumulative match curves of DelpNet and the four architectures."""
    runs = {name: job.architectures[name] for name in ("delpnet",) + COMPARISON_ARCHITECTURES}
    return _cmc_item(job, runs, FIGURES["fig6"], "Fig. 6: architectures (test set)", PAPER["fig6"]["top1"])

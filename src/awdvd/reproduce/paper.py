"""The paper's numbers and the names of the reproduction: which items the report holds, which runs answer
them, their labels and figure files (He et al. 2019, section 3)."""

from __future__ import annotations

__all__ = ["REPORT_ITEMS", "PAPER", "PAPER_SOURCES", "COMPARISON_VARIANTS", "BN_STUDY_VARIANTS", "BN_STUDY_SUFFIX", "COMPARISON_ARCHITECTURES", "LABELS", "network_label",
           "FIGURES", "ITEM_TITLES", "ITEM_KEYS"]

#: The items of the paper's results section, in report order.
REPORT_ITEMS = ("Table 1", "Table 2", "Fig. 3", "Fig. 4", "Fig. 5", "Fig. 6", "Fig. 7", "Fig. 8", "Fig. 9")

#: The paper's numbers (He et al. 2019, section 3), as fractions where the paper gives percentages.
PAPER = {
    "table1": {
        "no-bg": {"accuracy": 0.968, "precision": 0.966, "recall": 0.969, "f1": 0.967},
        "delpnet": {"accuracy": 0.982, "precision": 0.982, "recall": 0.983, "f1": 0.983},
    },
    "table2": {
        "vgg16": {"params": 39.9e6, "accuracy": 0.969, "precision": 0.969, "recall": 0.970, "f1": 0.969},
        "inception_v3": {"params": 21.8e6, "accuracy": 0.915, "precision": 0.915, "recall": 0.917, "f1": 0.916},
        "resnet18": {"params": 12.6e6, "accuracy": 0.887, "precision": 0.887, "recall": 0.891, "f1": 0.888},
        "mobilenet_v2": {"params": 2.3e6, "accuracy": 0.787, "precision": 0.790, "recall": 0.796, "f1": 0.791},
        "delpnet": {"params": 2.3e6, "accuracy": 0.982, "precision": 0.982, "recall": 0.983, "f1": 0.983},
    },
    "fig3": {"accuracy": 0.982, "note": "precision, recall and F1 all above 98%; wrong predictions mostly next to "
                                        "the true level"},
    "fig4": {"note": "validation loss with BN momentum 0.99 oscillates severely; 0.60 converges steadily"},
    "fig5": {"top1": {"delpnet": 0.982, "no-bg": 0.968, "plain": None}},
    "fig6": {"top1": {"delpnet": 0.982, "vgg16": 0.969, "inception_v3": 0.915, "resnet18": 0.887,
                      "mobilenet_v2": 0.787}},
    "fig7": {"predicted_level": 4,
             "psnr_db": {"defocused": 59.0, "noisy": 59.0, "variant": 63.8, "invariant": 59.0},
             "ssim": {"noisy": 0.83, "variant": 0.86},
             "note": "PSNR 'about 59.0 dB' for the defocused, noisy and depth-invariant patches"},
    "fig8": {"psnr_gain_variant_db": (0.3, 6.6), "psnr_gain_invariant_db": (0.0, 1.5), "ssim_variant": (0.66, 1.0),
             "ssim_ratio_gain_percent": (0.0, 11.0), "patches_per_level": 45},
    "fig9": {"note": "case (i) (stride 84, rectangular) shows patch boundary artifacts; case (ii) (stride 42, "
                     "triangular) removes them and looks smoother"},
}

PAPER_SOURCES = 381  # in-focus BBBC006 images the paper synthesised from
#: The DelpNet variants of Table 1 and Fig. 5 (one budget), the pair of Fig. 4's BatchNorm-momentum study, and
#: the architectures of Table 2 and Fig. 6.
COMPARISON_VARIANTS = ("delpnet", "no-bg", "plain")
BN_STUDY_VARIANTS = ("delpnet", "bn-momentum-0.99")
#: the key suffix of the BN study's runs (trained without BatchNorm recalibration)
BN_STUDY_SUFFIX = "+keras-bn"
COMPARISON_ARCHITECTURES = ("vgg16", "inception_v3", "resnet18", "mobilenet_v2")
#: How the report names each run's network, and the file of each figure.
LABELS = {"delpnet": "DelpNet", "no-bg": "DelpNet without bg", "bn-momentum-0.99": "DelpNet, BN momentum 0.99",
          "plain": "plain (no bg, no Dropout, BN 0.99)", "vgg16": "VGG16", "inception_v3": "Inception_v3",
          "resnet18": "ResNet18", "mobilenet_v2": "MobileNet_v2"}


def network_label(name: str, network_args: dict | None = None) -> str:
    """How the report names a run's network (``LABELS``), saying so where a scale's ``network_args`` give VGG16
    BatchNorm (not the paper's network)."""
    batch_norm = bool((network_args or {}).get(name, {}).get("batch_norm"))
    return LABELS[name] + (" with BatchNorm" if batch_norm else "")


FIGURES = {"fig3": "fig3_confusion.png", "fig4": "fig4_bn_momentum.png", "fig5": "fig5_cmc_strategies.png",
           "fig6": "fig6_cmc_architectures.png", "fig7": "fig7_patch.png", "fig8": "fig8_per_level.png",
           "fig9": "fig9_whole_image.png"}

#: The keys of results.json's "items", in report order (one per entry of REPORT_ITEMS), and their titles.
ITEM_KEYS = ("table1", "table2", "fig3", "fig4", "fig5", "fig6", "fig7", "fig8", "fig9")
ITEM_TITLES = {"table1": "Table 1, with and without the bg class", "table2": "Table 2, DelpNet vs four architectures",
               "fig3": "Fig. 3, confusion matrix of the main DelpNet", "fig4": "Fig. 4, BN momentum 0.6 vs 0.99",
               "fig5": "Fig. 5, top-k curves of the strategies", "fig6": "Fig. 6, top-k curves of the architectures",
               "fig7": "Fig. 7, one test patch restored", "fig8": "Fig. 8, PSNR/SSIM per defocus level",
               "fig9": "Fig. 9, whole tilted specimen, case (i) vs case (ii)"}

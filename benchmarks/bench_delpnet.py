"""DelpNet speed: inference patches/s (eager vs BatchNorm-folded vs TorchScript, several batch sizes), training
throughput patches/s, and the size and cost of every architecture beside the paper's parameter counts.

    PYTHONPATH=src python benchmarks/bench_delpnet.py                 # ~2 minutes on 2 cores
    PYTHONPATH=src python benchmarks/bench_delpnet.py --quick         # fewer repeats
    PYTHONPATH=src python benchmarks/bench_delpnet.py --all-architectures   # also times the comparison nets
    PYTHONPATH=src python benchmarks/bench_delpnet.py --sections training    # the training throughputs only

Timings are interleaved (every variant once per round); the median and the best round are reported, so a
neighbour's load hits all variants alike (on a shared machine the best round is the closer estimate of an idle
one); compare the ratios within one run, not absolute figures across machines. Weights are random (speed does not depend on them); BatchNorm statistics are randomised so that
folding has something to fold.

Figures measured on the 2-core development machine (AMD EPYC, AVX2, torch 2.13.0+cpu, shared with other jobs:
load average 2-3 during the runs), `PYTHONPATH=src python benchmarks/bench_delpnet.py [--quick]`, three runs:
    DefocusModel.predict_patches, default (folded + TorchScript, batch 32)   192, 194, 209 patches/s (median)
    the previous default (training module, eager, batch 256)                 97,  98,  90 patches/s
    option DelpNetConfig(pool_after=4)                                       407, 100 (contended), 494 patches/s
    training step, batch 128, contiguous / channels_last                     37 / 41 patches/s (interleaved run;
                                                                             not a consistent gain, not used)
"""

from __future__ import annotations

import argparse
import statistics
import time


def _randomise_batchnorm(network, seed=0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    for module in network.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)


def _rates(fn, n_items, rounds):
    """Items per second of each of ``rounds`` calls of ``fn``."""
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        rates.append(n_items / (time.perf_counter() - start))
    return rates


def _rate(fn, n_items, rounds):
    return statistics.median(_rates(fn, n_items, rounds))


def _show(rates):
    return f"{statistics.median(rates):7.1f} patches/s (best {max(rates):7.1f})"


def bench_inference(args):
    import numpy as np
    import torch

    from awdvd.learn.model import DefocusModel, build_delpnet, optimize_for_inference
    from awdvd.learn.train_stream import LEAN_DELPNET
    from awdvd.physics.optics import Optics

    torch.manual_seed(0)
    network = build_delpnet().eval()
    _randomise_batchnorm(network)
    n = args.patches
    x = torch.rand(n, 1, 84, 84)
    variants = {"eager (training module, eval mode)": network,
                "eager, BatchNorm folded": optimize_for_inference(network, backend="eager")[0],
                "TorchScript optimize_for_inference": optimize_for_inference(network, backend="jit")[0]}
    with torch.inference_mode():
        reference = network(x[:64])
        for name, module in variants.items():
            diff = (module(x[:64]) - reference).abs().max().item()
            print(f"  {name:40s} max |logit difference| vs eager: {diff:.2e}")
        print(f"inference, {n} patches of 84 x 84, {torch.get_num_threads()} threads (median of {args.rounds} rounds):")
        results = {}
        for bs in args.batch_sizes:
            for name, module in variants.items():
                def run(module=module, bs=bs):
                    for start in range(0, n, bs):
                        module(x[start : start + bs])
                run()  # warm-up (TorchScript profiles its first calls)
                results[(name, bs)] = []
        for _ in range(args.rounds):
            for (name, bs) in results:
                module = variants[name]
                def run(module=module, bs=bs):
                    for start in range(0, n, bs):
                        module(x[start : start + bs])
                results[(name, bs)].append(_rate(run, n, 1))
    for (name, bs), rates in results.items():
        print(f"  {name:40s} batch {bs:4d}: {statistics.median(rates):7.1f} patches/s (best {max(rates):7.1f})")
    # the user-facing call: raw patches in, levels out (normalisation included), interleaved with the previous
    # default (the training module, batch 256) and an option that is not the default: a fourth 2 x 2 pooling
    # (same parameters, a quarter of the work in blocks 5-7, but trunk stride 16 for dense maps)
    from awdvd.learn.model import DelpNetConfig

    classes = list(range(11)) + [-1]
    raw = np.random.default_rng(0).poisson(200, size=(n, 84, 84)).astype(np.float32)
    callers = {
        "DefocusModel.predict_patches (default: folded + TorchScript, batch 32)":
            DefocusModel(network, optics=Optics(), class_levels=classes).predict_patches,
        "same, unoptimised (training module, batch 256: the previous default)":
            lambda x, m=DefocusModel(network, optics=Optics(), class_levels=classes, inference_backend=None):
                m.predict_patches(x, batch_size=256),
        "option DelpNetConfig(pool_after=4), predict_patches":
            DefocusModel(build_delpnet(DelpNetConfig(pool_after=4)).eval(), optics=Optics(),
                         class_levels=classes).predict_patches,
        "DelpNet-lean (the bundled model's network), predict_patches":
            lambda x, m=DefocusModel(build_delpnet(DelpNetConfig(**LEAN_DELPNET)).eval(), optics=Optics(),
                                     class_levels=classes, normalization="image-range"):
                m.predict_patches(x, value_range=(0.0, 400.0)),  # windows of an image whose range is known
    }
    rates = {name: [] for name in callers}
    for call in callers.values():
        call(raw[:64])
    for _ in range(args.rounds):
        for name, call in callers.items():
            rates[name] += _rates(lambda: call(raw), n, 1)
    for name, values in rates.items():
        print(f"  {name:72s} {_show(values)}")


def bench_training(args):
    import numpy as np
    import torch

    from awdvd.learn.model import DelpNetConfig, build_delpnet
    from awdvd.learn.train_stream import LEAN_DELPNET

    print(f"training step (forward + backward + AdamW), batch {args.train_batch} (interleaved):")
    steps = {}
    nets = {"DelpNet (paper-shaped; the fixed-dataset recipes)": DelpNetConfig(),
            "DelpNet-lean (the stream recipe)": DelpNetConfig(**LEAN_DELPNET)}
    for label, config in nets.items():
        for channels_last in (False, True):
            torch.manual_seed(0)
            network = build_delpnet(config).train()
            x = torch.rand(args.train_batch, 1, 84, 84)
            y = torch.randint(0, 12, (args.train_batch,))
            if channels_last:
                network = network.to(memory_format=torch.channels_last)
                x = x.contiguous(memory_format=torch.channels_last)
            optimizer = torch.optim.AdamW(network.parameters(), lr=1e-4)

            def step(network=network, x=x, y=y, optimizer=optimizer):
                optimizer.zero_grad(set_to_none=True)
                torch.nn.functional.cross_entropy(network(x), y).backward()
                optimizer.step()

            step()
            steps[f"{label}, {'channels_last' if channels_last else 'contiguous'}"] = step
    # the stream recipe's whole step: fresh windows, camera draws and noise, then the lean network's step
    from awdvd.data.synth import synthetic_nuclei
    from awdvd.data.training_stream import TrainingStream

    stream = TrainingStream([synthetic_nuclei((520, 696), seed=s) for s in range(2)], seed=0,
                            batch_size=args.train_batch)
    torch.manual_seed(0)
    lean = build_delpnet(DelpNetConfig(**LEAN_DELPNET)).train().to(memory_format=torch.channels_last)
    lean_optimizer = torch.optim.AdamW(lean.parameters(), lr=1e-4)

    def stream_step():
        xb, yb = stream.batch(args.train_batch)
        target = torch.from_numpy(np.where(yb < 0, 11, yb))
        lean_optimizer.zero_grad(set_to_none=True)
        torch.nn.functional.cross_entropy(lean(torch.from_numpy(xb).contiguous(memory_format=torch.channels_last)),
                                          target).backward()
        lean_optimizer.step()

    stream_step()
    steps["stream recipe step (data generation included)"] = stream_step
    rates = {name: [] for name in steps}
    for _ in range(max(2, args.rounds)):
        for name, step in steps.items():
            rates[name] += _rates(step, args.train_batch, 1)
    for name, values in rates.items():
        print(f"  {name:62s}: {_show(values)}")
    paper = statistics.median(rates["DelpNet (paper-shaped; the fixed-dataset recipes), contiguous"])
    stream_rate = statistics.median(rates["stream recipe step (data generation included)"])
    print(f"  stream recipe step / paper-shaped DelpNet step (what `awdvd train DATASET` ran): "
          f"{stream_rate / paper:.2f} x")


def bench_architectures(args):
    import torch

    from awdvd.learn.model import ARCHITECTURES, PAPER_PARAMETERS, build_network, network_cost, optimize_for_inference

    print("architectures (84 x 84 x 1 input, 12 classes):")
    print(f"  {'network':14s} {'params':>8s} {'paper':>7s} {'MMAC/patch':>11s}" + ("  patches/s (folded, batch 32)" if args.all_architectures else ""))
    for name in ARCHITECTURES:
        with torch.device("meta"):
            meta = build_network(name)
        cost = network_cost(meta)
        line = (f"  {name:14s} {cost['parameters'] / 1e6:7.2f}M {PAPER_PARAMETERS[name] / 1e6:6.1f}M "
                f"{cost['macs'] / 1e6:11.1f}")
        if args.all_architectures:
            torch.manual_seed(0)
            module = optimize_for_inference(build_network(name).eval(), backend="eager")[0]
            x = torch.rand(32, 1, 84, 84)
            with torch.inference_mode():
                module(x)
                line += f"  {_rate(lambda: module(x), 32, 3):7.1f}"
        print(line)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2: the target machine)")
    parser.add_argument("--quick", action="store_true", help="fewer rounds and patches")
    parser.add_argument("--all-architectures", action="store_true", help="also time every comparison network")
    parser.add_argument("--sections", default="architectures,inference,training",
                        help="comma-separated subset of architectures,inference,training")
    args = parser.parse_args()
    import warnings

    import torch

    from awdvd.physics.optics import UndersamplingWarning

    warnings.simplefilter("ignore", UndersamplingWarning)  # the paper's optics are undersampled by design

    torch.set_num_threads(args.threads)
    args.rounds = 3 if args.quick else 5
    args.patches = 256 if args.quick else 512
    args.batch_sizes = (32, 128) if args.quick else (16, 32, 64, 128, 256)
    args.train_batch = 128
    print(f"torch {torch.__version__}, {args.threads} threads")
    sections = set(args.sections.split(","))
    for name, bench in (("architectures", bench_architectures), ("inference", bench_inference),
                        ("training", bench_training)):
        if name in sections:
            bench(args)


if __name__ == "__main__":
    main()

"""`python -m course_lib diffusion train ...` and `... diffusion sample ...`: the diffusion chapter's commands.

train: a DDPM U-Net on MNIST within the profile's budget (or --steps / --seconds), checkpoint at --out, a JSON
record beside it (the command, the steps, the final loss and, with --judge N, the judge's scores).
sample: N images from a checkpoint by DDPM or DDIM, as a tensor file (.pt, (N, 1, 28, 28) in [-1, 1]) or a grid.
"""
from __future__ import annotations

from ..defaults import AUTOGUIDANCE, DDIM_ETA, SAMPLER_NAMES
from .common import (add_sampling_args, add_training_args, budget, command_line, start_training, write_record,
                     write_samples)

__all__ = ["add", "run"]


def add(sub) -> None:
    p = sub.add_parser("diffusion", help="train a diffusion model on MNIST or sample from one")
    dsub = p.add_subparsers(dest="action", required=True)
    t = dsub.add_parser("train", help="train a DDPM U-Net")
    add_training_args(t)
    t.add_argument("--out", required=True, help="checkpoint path to write")
    t.add_argument("--conditional", action="store_true", help="class-conditional (for classifier-free guidance)")
    t.add_argument("--plain", action="store_true",
                   help="the paper's model (Ho et al. 2020: eps-prediction, linear schedule, pixels) instead of the recipe")
    t.add_argument("--judge", type=int, default=0, metavar="N",
                   help="after training, score N DDIM-50 samples with the digit judge (written to OUT.json)")
    t.add_argument("--judge-guidance", type=float, default=None, metavar="W",
                   help="guidance scale for --judge on a conditional model (digits 0-9 in turn)")
    s = dsub.add_parser("sample", help="sample images from a checkpoint")
    s.add_argument("--checkpoint", required=True)
    s.add_argument("--sampler", choices=list(SAMPLER_NAMES), default="ddim")
    s.add_argument("--steps", type=int, default=50, help="sampling steps (<= the model's T)")
    s.add_argument("--n", type=int, default=64)
    s.add_argument("--label", type=int, default=None,
                   help="digit to draw (conditional models; default: digits 0-9 in turn)")
    s.add_argument("--guidance", type=float, default=None,
                   help=f"guidance scale w: classifier-free on a conditional model (default: none); autoguidance on an "
                        f"unconditional one (default {AUTOGUIDANCE}; 1 = the model alone)")
    s.add_argument("--eta", type=float, default=DDIM_ETA,
                   help=f"DDIM eta: 0 = deterministic, 1 = fresh noise at each step (default {DDIM_ETA:g}: better "
                        f"samples from short-trained models)")
    add_sampling_args(s)
    p.set_defaults(run=run)


def run(args) -> int:
    return train(args) if args.action == "train" else sample(args)


def train(args) -> int:
    import torch

    from ..data import load_mnist
    from ..diffusion import evaluate, recipe, resume_from, train_diffusion
    from ..diffusion_ablation import plain_ddpm

    device, profile, generator = start_training(args)
    data = load_mnist(args.data, limit=profile.mnist_limit)
    config = recipe(profile.name, conditional=args.conditional)
    config = plain_ddpm(config) if args.plain else config
    resume = resume_from(args.resume, config) if args.resume else None
    config = resume.config if resume else config
    result = train_diffusion(config, data.images, data.labels, device=device, generator=generator, resume=resume,
                             budget=budget(args, profile.diffusion_steps, profile.diffusion_seconds),
                             checkpoint=args.out)
    losses = result.history["loss"][-10:]
    record = {"command": train_command(args),
              "steps": result.steps, "train_seconds": round(result.seconds, 1), "data": data.source,
              "n_train": len(data), "device": str(device), "seed": args.seed, "torch": torch.__version__,
              "final_loss": round(sum(losses) / max(1, len(losses)), 5)}
    if args.judge:
        labels = "all" if config.conditional else None
        guidance = args.judge_guidance if config.conditional else None
        record["judge"] = evaluate(result.ema_model, config, n=args.judge, labels=labels, guidance=guidance)
        if result.weak_model is not None and not config.conditional:
            record["judge_autoguided"] = evaluate(result.autoguided(), config, n=args.judge)
    write_record(args.out, record)
    return 0


def train_command(args) -> str:
    """The training command, rebuilt from its arguments (recorded beside the checkpoint)."""
    flags = [("--profile", args.profile), ("--seconds", args.seconds), ("--steps", args.steps),
             ("--seed", args.seed), ("--resume", args.resume), ("--judge", args.judge or None),
             ("--judge-guidance", args.judge_guidance)]
    switches = [name for name, on in (("--conditional", args.conditional), ("--plain", args.plain)) if on]
    return command_line("diffusion train", args.out, flags, switches)


def sample(args) -> int:
    import torch

    from ..diffusion import digit_labels, load_diffusion
    from ..sampling import sample as draw
    from ..schedulers import scheduler_for
    from ..runtime import get_device

    device = get_device(args.device)
    run = load_diffusion(args.checkpoint, device=device)
    model, config = run.ema_model, run.config
    if not config.conditional and run.weak_model is not None:  # autoguidance, w = AUTOGUIDANCE unless given
        model = run.autoguided(args.guidance)  # --guidance 1: the model alone
    elif args.guidance is not None and not config.conditional:
        raise ValueError(f"--guidance on an unconditional model needs the weak model of autoguidance, and "
                         f"{args.checkpoint} has none: retrain it with this version, or train with --conditional")
    labels = args.label if args.label is not None else ("all" if config.conditional else None)
    scheduler = scheduler_for(config, args.sampler, eta=args.eta if args.sampler == "ddim" else 0.0)  # DDPM has no eta
    samples = draw(model, scheduler, n=args.n, num_steps=args.steps, labels=digit_labels(labels, args.n),
                   guidance=args.guidance, generator=torch.Generator().manual_seed(args.seed),
                   image_size=config.image_size, progress=True).cpu()  # (N, 1, H, W) in [-1, 1]
    out = write_samples(samples, args.out, nrow=10 if config.conditional else 8)
    print(f"wrote {len(samples)} samples {tuple(samples.shape)} ({args.sampler}, {args.steps} steps) to {out}")
    return 0

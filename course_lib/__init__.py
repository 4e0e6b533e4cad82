"""course_lib: the reference implementations behind the image-generation course.

Importing the package does nothing but define names: no device probing, downloads or file writes, and no torch
until a name that needs it is used (so `python -m course_lib --help` answers at once).
Import each name from the module that defines it; this package re-exports only `get_device`, `get_profile` and
`seed_everything`, the first cell of every notebook.

Module map (chapters: 00 setup, 01 GAN, 02 diffusion, 03 content loss, 04 style transfer, 05 perceptual editing):

    runtime           device, mixed precision (autocast, grad_scaler), budget profiles, seed, progress bar (all)
    defaults          plain constants that the library and the command line share, without torch (all)
    downloads         the one download helper, atomic and checksummed (all)
    data              MNIST (load_mnist) and the asset cache (fetch_all, asset_status) (00, 01, 02)
    images            photos and paintings as tensors: load_image, example_image, style_image (00, 03, 04)
    viz               image grids, side-by-side and nearest-neighbour pictures, training curves, animations (all)
    checks            the exercises' verdicts; checks.gan, .diffusion, .content, .style, .editing: each chapter's checks (01-05)
    train             what every training loop shares: Budget, EMA, checkpoints, check_finite (01, 02)
    dcgan             the GAN's networks: DCGAN's Generator and Discriminator (01)
    gan               DCGANConfig, the losses, the training loop, checkpoints, evaluation (01)
    gan_toy           the adversarial game on a 2-D ring of Gaussians, in seconds (01)
    gan_edit          latent walks and GAN inversion, in pixels or in the digit classifier's features (01, 05)
    digit_classifier  the CNN behind the digit judge, and how it is trained (01, 02)
    metrics           the digit judge: classifier FID, recognizability, nearest neighbours (memorisation_check) (01, 02)
    unet              the denoising network: a time- and class-conditioned U-Net (02)
    diagrams          pictures of networks drawn from the model itself: the U-Net's blocks, shapes and skips (02)
    schedulers        noise schedules, q_sample, DDPMScheduler, DDIMScheduler, scheduler_for (02)
    diffusion         DiffusionConfig, the objective, the training loop, checkpoints, evaluation (02)
    diffusion_ablation  the ladder from plain DDPM (Ho et al. 2020) to the recipe, one change per rung (02)
    sampling          the one sampling loop for every scheduler, classifier-free guidance, autoguidance (02)
    diffusion_edit    editing with a diffusion model: inpainting (RePaint) and SDEdit (02)
    perceptual        VGG19 features by layer name, the content loss, feature inversion (03, 04)
    optimize          optimizing the pixels of an image: optimize_image, PyramidImage, our L-BFGS (03, 04)
    style             Gatys style transfer: Gram matrices, the style loss, stylize (04)
    transform_net     Johnson et al.'s image transformation network: any size in, same size (or 4x) out (05)
    photo_crops       training photos for chapter 05: seeded random crops, astronaut and coffee held out (05)
    transform_training  training a TransformNet on photo crops with any loss: the loop, checkpoints, apply (05)
    fast_style        feed-forward style transfer: the perceptual loss, training, checkpoints, apply_fast_style (05)
    super_resolution  4x super-resolution: degrade, pixel and perceptual losses, upscale, PSNR, evaluation (05)
    bench             make bench: runs the groups of course_lib/benchmarks/, one table, bench/results.json
    gpu_report        make gpu-report: the full profile's targets measured on one GPU
    commands/         the command line (python -m course_lib ...), one module per command group
"""
__version__ = "0.1.0"

__all__ = ["__version__", "get_device", "get_profile", "seed_everything"]

_FROM_RUNTIME = ("get_device", "get_profile", "seed_everything")


def __getattr__(name: str):
    """`course_lib.get_device` and friends, read from course_lib.runtime when first asked for (PEP 562)."""
    if name in _FROM_RUNTIME:
        from . import runtime
        return getattr(runtime, name)
    raise AttributeError(f"module 'course_lib' has no attribute {name!r}")

"""Frozen configuration dataclasses for every stage, and their JSON round trip.

Every stage's config is a frozen dataclass defined here (later stages add theirs), so that what a
command does can be done from Python with the same object and a run directory can record it.
`config_to_dict` / `config_from_dict` round-trip nested dataclasses through plain JSON; unknown
or missing keys are errors, so a config written by another version is refused clearly.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from egogrpo.errors import EgogrpoError
from egogrpo.fileio import atomic_output

C = TypeVar("C")


def config_to_dict(config: object) -> dict[str, Any]:
    """Nested dataclasses → JSON-ready dicts (tuples become lists, paths strings)."""

    def convert(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: convert(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [convert(v) for v in value]
        if isinstance(value, Path):
            return str(value)
        return value

    return convert(config)


def _coerce(annotation: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return config_from_dict(annotation, value, where)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        for option in options:
            if option is not type(None):
                try:
                    return _coerce(option, value, where)
                except (EgogrpoError, TypeError, ValueError):
                    continue
        raise EgogrpoError(f"{where}: value {value!r} does not fit {annotation}")
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, where) for v in value)
        return tuple(_coerce(a, v, where) for a, v in zip(args, value, strict=True))
    if annotation is Path:
        return Path(value)
    if annotation is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, str, bool) and not isinstance(value, annotation):
        raise EgogrpoError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def config_from_dict(cls: type[C], data: dict[str, Any], where: str = "config") -> C:
    """Build a (nested) dataclass from a dict, refusing unknown and missing keys."""
    if not isinstance(data, dict):
        raise EgogrpoError(f"{where}: expected an object, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise EgogrpoError(f"{where}: unknown key(s) {', '.join(unknown)} for {cls.__name__}")
    kwargs = {}
    for name, spec in fields.items():
        if name in data:
            kwargs[name] = _coerce(hints[name], data[name], f"{where}.{name}")
        elif spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
            raise EgogrpoError(f"{where}: missing key {name} for {cls.__name__}")
    return cls(**kwargs)


def save_config(config: object, path: str | Path) -> None:
    """Write a config as indented JSON, atomically."""
    with atomic_output(path) as tmp:
        tmp.write_text(json.dumps(config_to_dict(config), indent=2) + "\n")


def load_config(cls: type[C], path: str | Path) -> C:
    """Read a config written by `save_config`."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EgogrpoError(f"{path}: no such config file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise EgogrpoError(f"{path}: not valid JSON ({e})") from None
    return config_from_dict(cls, data, where=str(path))


# --- preprocessing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FloorContactConfig:
    """HuMoR-style floor estimate and contact labels (metres, metres per second).

    A foot joint is *static* when its speed is below `static_speed` (HuMoR's 0.005 m per frame at
    120 fps). The floor is the median height of the lowest cluster of static toe heights (1-D
    clusters split at gaps larger than `cluster_gap`, at least `min_cluster_size` samples), minus
    `toe_clearance`. Contacts: static and below `toe_height` (toes) or `joint_height` (ankles,
    knees, wrists) above the floor.
    """

    static_speed: float = 0.6
    cluster_gap: float = 0.005
    min_cluster_size: int = 3
    toe_clearance: float = 0.01
    toe_height: float = 0.04
    joint_height: float = 0.08


@dataclass(frozen=True)
class ProcessConfig:
    """How a clip becomes a stored sequence: resampling, trimming, floor and contacts, length checks."""

    fps: float = 30.0  # output frame rate; resampled by timestamp (slerp/lerp)
    trim_fraction: float = 0.0  # drop this fraction at each end (EgoAllo's AMASS processing: 0.1)
    min_frames: int = 128  # stored frames (the first is dropped) below this are refused: one training crop
    floor: FloorContactConfig = field(default_factory=FloorContactConfig)


@dataclass(frozen=True)
class PreprocessConfig:
    """One `egogrpo preprocess SOURCE` run: what to read, which body model, how to process, where to write.

    The fields that change the written data are recorded in the output file (`options_json`);
    a `.partial` output made with other settings is not resumed.
    """

    source: str  # "amass", "cmu", "bvh", "rich", "adt" or "corpus"
    inputs: tuple[str, ...]  # a dataset root folder, or files (corpus: the corpus manifest)
    out: str  # the HDF5 file to write
    body: str = "default"  # output body model: "default" or an SMPL-H/SMPL-X .npz (AMASS: the neutral SMPL-H)
    splits: tuple[str, ...] = ("train", "val", "test")  # which splits to write (from data_manifests/)
    process: ProcessConfig = field(default_factory=ProcessConfig)
    mirror: bool = False  # also write a left/right mirrored copy of every clip ("<name>_mirror")
    skip_short: bool = False  # leave out clips shorter than one crop instead of stopping with an error
    overwrite: bool = False  # replace an existing output file
    workers: int = 0  # worker processes; 0 = one per CPU core
    source_fps: float = 120.0  # CMU AMC files do not state their rate (CMU captured at 120 fps)
    bvh_units: str = "auto"  # BVH length unit: auto, m, cm, mm, inch, cmu, or metres per unit
    bvh_split: str = "train"  # the split BVH files are recorded under
    bvh_fps: float | None = None  # BVH: the true frame rate, overriding the files' Frame Time (None: the files')
    corpus_root: str = ""  # corpus: the folder the manifest's file patterns are relative to
    glitches: str = "keep"  # cmu/bvh/corpus: single-frame glitches are kept, trimmed or dropped (data.glitches)
    split_manifest: str = "cmu"  # CMU: the data_manifests/ split list ("cmu", or "cmu_subject02" to hold out a subject)
    corpus: str = ""  # cmu/bvh: a corpus of data_manifests/corpora.json (names, splits, licence); "" = cmu for cmu
    licence: str = ""  # cmu/bvh: the data's licence, recorded per sequence ("" = the corpus's, from corpora.json)
    male_model: str | None = None  # AMASS/RICH: the male model file, for the male → neutral shape map
    female_model: str | None = None  # AMASS/RICH: the female model file


# --- the motion prior --------------------------------------------------------------------------------


@dataclass(frozen=True)
class DenoiserConfig:
    """EgoAllo's denoiser (reference/egoallo.md §3–4). Field names and defaults are EgoAllo's, so that
    `import-egoallo` maps its released `model_config.yaml` one to one; `egoallo` is the 50 M preset.

    num_betas:  shape parameters in the motion state (16 for SMPL-H as EgoAllo; the default body: 10)
    """

    max_t: int = 1000
    fourier_enc_freqs: int = 3
    d_latent: int = 512
    d_feedforward: int = 2048
    d_noise_emb: int = 1024
    num_heads: int = 4
    encoder_layers: int = 6
    decoder_layers: int = 6
    dropout_p: float = 0.0
    activation: str = "gelu"
    positional_encoding: str = "rope"
    noise_conditioning: str = "token"
    xattn_mode: str = "kv_from_cond_q_from_x"
    include_canonicalized_cpf_rotation_in_cond: bool = True
    include_hands: bool = True
    cond_param: str = "ours"
    include_hand_positions_cond: bool = False
    num_betas: int = 16


#: Named sizes: the original 50 M-parameter model for GPUs, and small ones for CPUs and tests.
DENOISER_PRESETS: dict[str, DenoiserConfig] = {
    "egoallo": DenoiserConfig(),
    # The shipped default model (about 2 M parameters, 7.8 MB): trains on a laptop CPU in minutes.
    "cpu": DenoiserConfig(
        d_latent=128, d_feedforward=512, d_noise_emb=256, num_heads=4, encoder_layers=3, decoder_layers=3,
        include_hands=False, num_betas=10,
    ),
    "small": DenoiserConfig(
        d_latent=256, d_feedforward=1024, d_noise_emb=512, num_heads=4, encoder_layers=3, decoder_layers=3,
        include_hands=False, num_betas=10,
    ),
    "tiny": DenoiserConfig(
        d_latent=64, d_feedforward=128, d_noise_emb=64, num_heads=2, encoder_layers=1, decoder_layers=1,
        include_hands=False, num_betas=10,
    ),
}  # fmt: skip


@dataclass(frozen=True)
class SamplerConfig:
    """How motion is sampled from the prior (the sampler is also the GRPO policy; reference/grpo-for-diffusion.md §3).

    rule:            "egoallo" (30 quadratic steps, σ = 0.8 × one-step posterior std, the +0.1 damping of ε̂),
                     "ddim" (DDIM-η over `num_steps` timesteps) or "dpmpp2m" (DPM-Solver++(2M), Lu et al., arXiv
                     2211.01095: deterministic, second-order multistep on the x̂₀ predictions, first order at the
                     first and the last step; inference only — no density, not a GRPO policy)
    num_steps:       transitions for "ddim" and "dpmpp2m" ("egoallo" always takes 30)
    spacing:         the timesteps of "ddim"/"dpmpp2m": "linear" (T·(N−k)/N, evenly strided) or "quadratic"
                     (T·((N−k)/N)², denser near t = 0 like EgoAllo's plan; N ≤ √T)
    eta:             DDIM η (1 = the strided DDPM posterior; 0 = deterministic DDIM, no density)
    egoallo_noise_scale, egoallo_eps_damping: EgoAllo's 0.8 and +0.1
    window, overlap: frames per denoiser window and blended overlap between windows
    window_rule:     where windows start (`egogrpo.model.sampler.window_starts`): "aligned" (egogrpo: every
                     window `window` frames, the last one aligned to the sequence end, one denoiser call) or
                     "egoallo" (EgoAllo: starts range(0, L, window − overlap), each cut at the sequence end)
    stochastic_steps: an SDE window [first, stop) of transition indices (0 = the first, T → …) that draw
                     noise; every other transition is deterministic (σ = 0, outside the MDP), as in
                     MixGRPO / Flow-GRPO-Fast. None: every transition but the last is stochastic.
    projection:      the SO(3) projection of x̂₀ (`geometry.nearest_rotation`): "svd" (EgoAllo's, the default)
                     or "polar" (scaled Newton iteration; within float32 rounding of the SVD, faster)
    autocast:        run the denoiser under bf16 autocast while sampling (`model.denoiser.sampling_denoiser`);
                     never in log-probability recomputation, which stays float32 (GRPO must recompute the
                     old log-probabilities in float32 when rollouts use it)
    compile:         `torch.compile` the denoiser for sampling (static shapes; first call compiles)
    """

    rule: str = "egoallo"
    num_steps: int = 30
    spacing: str = "linear"
    eta: float = 1.0
    egoallo_noise_scale: float = 0.8
    egoallo_eps_damping: float = 0.1
    window: int = 128
    overlap: int = 32
    window_rule: str = "aligned"
    stochastic_steps: tuple[int, int] | None = None
    projection: str = "svd"
    autocast: bool = False
    compile: bool = False


@dataclass(frozen=True)
class AugmentConfig:
    """On-the-fly augmentation of training crops (`train-prior`); all off by default.

    Each crop's draws come from a generator keyed by (seed, epoch, crop index), so a run resumes
    exactly and the crops do not depend on the number of workers or processes. An augmented crop is
    rebuilt from its pose through `data.process.process_clip` (FK, CPF, contacts), so its condition,
    state and labels stay consistent; the floor stays at z = 0.

    mirror:      probability of a left/right mirror image (the `preprocess --mirror` reflection)
    shape_prob:  probability of replaying the motion on another body: betas ~ N(0, shape_std² I) over
                 the body model's shape space; the root translation is scaled by the ratio of rest
                 pelvis heights above the soles, so that steps and the pelvis height fit the new legs
    shape_std:   standard deviation of the sampled betas (shape-space units)
    speed_min, speed_max: playback-speed factor drawn uniformly in [min, max] (1.2 = 20 % faster);
                 the motion is resampled in time (slerp/lerp) before the crop is cut
    """

    mirror: float = 0.0
    shape_prob: float = 0.0
    shape_std: float = 1.0
    speed_min: float = 1.0
    speed_max: float = 1.0

    @property
    def active(self) -> bool:
        return self.mirror > 0 or self.shape_prob > 0 or self.speed_min != 1.0 or self.speed_max != 1.0


AUGMENT_PRESETS: dict[str, AugmentConfig] = {
    "none": AugmentConfig(),
    "standard": AugmentConfig(mirror=0.5, shape_prob=0.5, shape_std=1.0, speed_min=0.8, speed_max=1.2),
}


@dataclass(frozen=True)
class TrainPriorConfig:
    """`egogrpo train-prior`: EgoAllo's training recipe (AdamW 1e-4, weight decay 1e-4, linear warm-up over
    1000 steps then constant, gradient clipping at 1.0, 128-frame crops, global batch 256) with sizes to
    suit the hardware. Every batch and every noise draw is a function of (seed, step, global batch row),
    drawn on the training device, so a resumed run continues exactly as if it had not stopped.
    """

    data: str  # HDF5 motion file from `egogrpo preprocess`
    run_dir: str  # a new folder (never overwritten); resume with `resume=True`
    body: str = "default"  # the body model the data was made with: "default" or the SMPL-H/SMPL-X .npz
    model: DenoiserConfig = field(default_factory=lambda: DENOISER_PRESETS["cpu"])
    train_splits: tuple[str, ...] = ("train",)
    val_split: str = "val"
    crop_length: int = 128
    augment: AugmentConfig = field(default_factory=AugmentConfig)  # on-the-fly crop augmentation (off)
    batch_size: int = 32  # global batch, split over processes
    learning_rate: float = 1e-4
    weight_decay: float = 1e-4
    warmup_steps: int = 1000
    grad_clip: float = 1.0
    max_steps: int = 10_000
    log_every: int = 50
    val_every: int = 1000  # sampled MPJPE on the validation split (0: never)
    val_windows: int = (
        16  # validation windows: non-overlapping 128-frame windows of the val split, at most this many, evenly spread
    )
    val_seeds: int = (
        1  # samples per val window (seeds 0, 1, …, the same for every run): fewer sampling-noise ups and downs
    )
    checkpoint_every: int = 1000
    sampler: SamplerConfig = field(default_factory=SamplerConfig)  # for validation sampling
    num_workers: int = 0  # DataLoader worker processes per training process
    preload: bool = True  # read the whole motion file into memory (small datasets)
    ema_decay: float = 0.0  # EMA of the weights, decay min(d, (1+step)/(10+step)); validated, checkpointed and
    #                         shipped instead of the raw weights when > 0 (0: off, EgoAllo's recipe)
    seed: int = 0
    resume: bool = False
    autocast: bool = False  # bf16 autocast of the denoiser's forward/backward (the loss in float32)
    compile: bool = False  # torch.compile the training forward (static shapes; first step compiles)
    tf32: bool = False  # CUDA only: TensorFloat-32 float32 matmuls (torch.set_float32_matmul_precision("high"))
    device: str = "auto"  # "auto" (CUDA when present, else CPU), "cpu" or "cuda"


# --- post-training (MotionGRPO) ------------------------------------------------------------------------


@dataclass(frozen=True)
class PerlinConfig:
    """Perlin noise on the head (CPF) translation, paper Eq. 16: τ̃(t) = τ(t) + λ·P(t).

    amplitude:     λ in metres. P is PEAK-normalised per axis: |P| ≤ 1, so λ = 0.1 moves the head by at
                   most ±10 cm along each world axis (at most √3·λ in 3-D). 0 disables the perturbation.
    lattice_frames: lattice spacing of the first octave in frames (30 = one cell per second at 30 fps)
    octaves, persistence, lacunarity: fractal sum Σ_o p^o·n(l^o·x) / Σ_o p^o
    scope:         "group": one perturbation per condition, shared by its G members (Algorithm 1, line 5);
                   "member": an independent perturbation for every member
    """

    amplitude: float = 0.1
    lattice_frames: float = 30.0
    octaves: int = 2
    persistence: float = 0.5
    lacunarity: float = 2.0
    scope: str = "group"


@dataclass(frozen=True)
class RewardConfig:
    """The hybrid reward (paper §3.4, Eqs. 10–15) and its group-relative advantages (Eq. 5, Algorithm 1).

    Each joint reward is exp(−ω·err), err averaged over frames and joints, the body placed on the
    GROUND-TRUTH CPF (what evaluation measures; the perturbation is an exploration device, not a target):
    rot_weight:      ω_rot, err = L1 norm of the 3×3 local rotation matrix difference (21 body joints)
    pos_weight:      ω_pos, err = L2 distance of world joint positions, metres (22 joints)
    pos_pa_weight:   ω'_pos, err = the same after per-frame Umeyama similarity alignment, metres
    vel_weight:      ω_vel, err = L2 distance of joint velocities, metres/second (30 fps)
    visual_weight:   ω_vis of R_vis = exp(ω_vis·s), used only when a perceptual scorer is given
    std_floor:       each sub-reward is normalised by max(std, floor) within its group (unbiased std);
                     1e-4 ≈ the R_pos spread of 0.1 mm of joint error. The joint rewards are exact functions
                     of the sample, so small spreads are real differences; the floor only bounds the division
    combine:         "mean" (Algorithm 1, line 11: average the K normalised sub-rewards) or "sum" (Eq. 8)
    advantage_clip:  advantages are clipped to ±this (DDPO/Flow-GRPO: 5)
    advantage:       "normalized" ((r − mean)/max(std, floor), the paper) or "rank" (Pref-GRPO, arXiv 2508.20751:
                     each sub-reward replaced by the member's within-group win rate before normalising, so
                     near-equal rewards give bounded, rank-only advantages instead of amplified noise)
    A group whose every sub-reward spread is below `std_floor` is degenerate: its advantages are 0.
    """

    rot_weight: float = 1.0
    pos_weight: float = 1.0
    pos_pa_weight: float = 0.5
    vel_weight: float = 1.0
    visual_weight: float = 1.0
    std_floor: float = 1e-4
    combine: str = "mean"
    advantage_clip: float = 5.0
    advantage: str = "normalized"


@dataclass(frozen=True)
class TrainGRPOConfig:
    """`egogrpo train-grpo`: MotionGRPO post-training of a prior (paper §3.3–3.5, Algorithm 1, Appendix C).

    Each iteration: `batch_groups` ground-truth crops of `crop_length` frames from the train split (a pure
    function of (seed, iteration)); each gets a Perlin-perturbed condition and `group_size` rollouts of
    the current policy (π_old, no gradients); the hybrid reward; group-relative advantages; then
    `inner_epochs` passes over the trajectories' MDP transitions — `train_steps_per_trajectory` of them
    drawn at random per trajectory (DanceGRPO's timestep fraction), shuffled and cut into
    `updates_per_epoch` optimizer steps — maximising the importance-weighted advantage (Eq. 8).

    Batch arithmetic: rollouts per iteration = batch_groups × group_size; transitions trained per
    iteration = rollouts × train_steps_per_trajectory × inner_epochs, in micro-batches of `micro_batch`.

    prior:            checkpoint folder (or "default") the policy starts from; also the frozen KL reference
    group_size:       G, members per condition (paper 16)
    batch_groups:     conditions per iteration over all processes (paper: batch 64)
    learning_rate:    AdamW (paper 1e-5); weight_decay, grad_clip (max grad norm) as usual
    inner_epochs, updates_per_epoch: passes over the iteration's transitions; optimizer steps per pass
    train_steps_per_trajectory: MDP transitions trained per trajectory (None: all of them)
    micro_batch:      transitions per forward/backward (memory only: gradients are accumulated)
    clip_range:       PPO clip ε of the ratio (None: no clipping; with one update per iteration ρ = 1)
    kl_weight:        β of β·‖μ_θ − μ_ref‖²/(2σ²) (per-dimension mean) to the frozen prior (0: off)
    share_initial_noise: one x_T per group (Algorithm 1) or one per member
    recompute_old_log_probs: recompute π_old's log-probs in the training layout before the first update
                      (bit-exact ratio 1; needed when rollouts ran under autocast)
    log_prob_fields:  state fields the log-probability averages over (None: all — exact); e.g.
                      ("body_rotmats",): a biased, lower-variance surrogate ignoring what no reward sees
    sampler:          the rollout sampler (also the policy); `stochastic_steps` sets an SDE window
    augment:          on-the-fly augmentation of the training crops, train-prior's (`AugmentConfig`), keyed by
                      (seed, epoch, crop); off by default (the paper post-trains on the plain crops)
    val_every:        iterations between val-split MPJPE / PA-MPJPE (and checkpoints; 0: never)
    val_windows, val_seeds: validation windows (non-overlapping 128-frame windows of the val split, at most
                      this many, evenly spread) and samples per window
    time_budget_minutes: stop (with validation and a checkpoint) after the iteration at which the run's training
                      time — rollouts, rewards, updates and validation, summed over resumes, logged as
                      `time/elapsed_s` beside the process CPU time `time/cpu_s` — reaches this many minutes
                      (None: run all `iterations`); for comparisons of update rules on equal compute
    budget_clock:     what `time_budget_minutes` counts: "wall" (training wall-clock) or "cpu" (the process's CPU
                      time, all threads: equal compute for runs that share a machine)
    anchor_weight:    w of w·L_prior added to EVERY optimizer step of every rule: the prior's own denoising loss
                      (`train.prior.denoising_losses`, EgoAllo's weights) on `anchor_batch` real training crops,
                      keyed by (seed, optimizer step) — ties the policy to real data while the reward pulls (0: off)
    anchor_batch:     real crops per optimizer step of the anchor loss (over all processes)
    freeze_condition_encoder: keep the denoiser's condition encoder (`latent_from_cond`, the linear map of the
                      head features into the latent; the MotionGRPO first author's script freezes it) fixed:
                      no gradient, no optimizer state, bit-identical after the run

    algo: the update rule; every one shares the data, Perlin noise, rollouts, rewards, advantages, processes,
    diagnostics, checkpoints and resume (reference/grpo-for-diffusion.md §6, §8):
      "grpo"   the faithful MotionGRPO objective above (Eq. 8; clip_range, kl_weight, log_prob_fields and
               recompute_old_log_probs apply to it alone)
      "awm"    Advantage Weighted Matching (Xue et al., arXiv 2509.25050): the prior's own denoising loss
               (`train.prior_loss`, EgoAllo's weights w(t)) on each member's FINAL sample, re-noised at
               `train_steps_per_trajectory` of the sampler's timesteps, weighted by the member's advantage Â.
               No log-probabilities, so no σ → 0 or bf16 ratio problems; any sampler may do the rollouts
      "nft"    DiffusionNFT (Zheng et al., arXiv 2509.16117): the same re-noised final samples, trained with
               r·L(x̂⁺) + (1−r)·L(x̂⁻), x̂⁺ = (1−β)x̂_old + βx̂_θ, x̂⁻ = (1+β)x̂_old − βx̂_θ, r = ½ + ½·Â/c
               (c = reward.advantage_clip), scaled by c/β. At θ = θ_old its gradient equals AWM's; it differs
               (an implicit trust region around π_old) when inner_epochs × updates_per_epoch > 1
      "draft"  DRaFT-K (Clark et al., arXiv 2309.17400): back-propagate the differentiable joint reward
               R_rot + R_pos + R'_pos + R_vel of each final sample through the last `draft_k` sampler
               transitions (the same keyed noise as the rollout; earlier transitions are constants)
    For awm and nft, kl_weight β adds β·w(t)·‖x̂₀_θ − x̂₀_prior‖² (the prior's loss towards the frozen prior's
    prediction at the same x_t) — the x̂₀-space form of the Gaussian KL. For draft it adds β times the mean over
    the replayed stochastic transitions of the per-step Gaussian KL of the transition means, θ against the
    frozen prior at the same latents (GRPO's KL along DRaFT's differentiable path).
    draft_k:          DRaFT's K, transitions back-propagated through (1: only the last, deterministic one)
    nft_beta:         DiffusionNFT's β (the official configs use 1)
    """

    prior: str
    data: str
    run_dir: str
    body: str = "default"
    iterations: int = 2000
    group_size: int = 16
    batch_groups: int = 64
    crop_length: int = 128
    learning_rate: float = 1e-5
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    inner_epochs: int = 1
    updates_per_epoch: int = 1
    train_steps_per_trajectory: int | None = None
    micro_batch: int = 16
    clip_range: float | None = None
    kl_weight: float = 0.0
    share_initial_noise: bool = True
    recompute_old_log_probs: bool = False
    log_prob_fields: tuple[str, ...] | None = None
    perlin: PerlinConfig = field(default_factory=PerlinConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train_splits: tuple[str, ...] = ("train",)
    val_split: str = "val"
    val_every: int = 50
    val_windows: int = 32
    val_seeds: int = 2
    checkpoint_every: int = 50
    seed: int = 0
    resume: bool = False
    time_budget_minutes: float | None = None
    budget_clock: str = "wall"
    anchor_weight: float = 0.0
    anchor_batch: int = 8
    freeze_condition_encoder: bool = False
    algo: str = "grpo"
    draft_k: int = 3
    nft_beta: float = 1.0
    reward_model: str | None = None  # perceptual checkpoint (`train-reward`): adds the frozen visual reward R_vis
    # --reward-online (paper §3.4.1 "online contrastive learning"; reference/grpo-for-diffusion.md §5): the scorer
    # starts from `reward_model` and keeps learning from the current policy, slower than the policy; R_vis comes from
    # an EMA copy of it. Each update is one AdamW step of InfoNCE (δ = reward_temperature): every condition's ground
    # truth against its G members, each as the x̂₀ of one of its last three sampling steps in THIS iteration's
    # rollouts (a keyed draw per (seed, iteration, group)); negatives within reward_min_negative_error metres MPJPE
    # of the ground truth are dropped as false negatives. Gradients are clipped to `grad_clip`.
    reward_online: bool = False
    reward_update_every: int = 5  # iterations between scorer updates (the slower cadence)
    reward_ema_decay: float = 0.9  # d of the scoring copy: ē ← d·ē + (1 − d)·φ after every scorer update
    reward_learning_rate: float = 1e-5  # AdamW lr of the scorer (train-reward's 1e-4 / 10: a slowly moving target)
    reward_weight_decay: float = 1e-2  # AdamW weight decay of the scorer (train-reward's)
    reward_temperature: float = 0.07  # δ of the online InfoNCE (paper)
    reward_min_negative_error: float = 0.005  # metres: the false-negative drop (train-reward's)
    device: str = "auto"  # "auto" (CUDA when present, else CPU), "cpu" or "cuda"


#: Named post-training recipes: the paper's, and one sized for a laptop CPU (one iteration of the shipped
#: `cpu` prior in well under a minute on 2 cores). Values are TrainGRPOConfig fields.
GRPO_PRESETS: dict[str, dict[str, Any]] = {
    # Paper Appendix C: G = 16, batch 64, λ = 0.1, lr 1e-5, EgoAllo's 30-step sampler, T = 128, ~2000 iterations.
    "paper": dict(
        iterations=2000, group_size=16, batch_groups=64, learning_rate=1e-5, micro_batch=64,
        train_steps_per_trajectory=None, val_every=50, checkpoint_every=50,
    ),
    # 4 conditions × 8 members, 6 of the 29 MDP steps trained per rollout, the paper's lr (measured on the
    # shipped prior: lr 5e-5 lowered the joint rewards of the training crops within 20 iterations, 1e-5 raised them).
    "cpu": dict(
        iterations=300, group_size=8, batch_groups=4, learning_rate=1e-5, micro_batch=32,
        train_steps_per_trajectory=6, val_every=20, checkpoint_every=20, val_seeds=2,
    ),
}  # fmt: skip

# --- the perceptual reward model (paper §3.4.1, Appendix C) ---------------------------------------------


@dataclass(frozen=True)
class PerceptualConfig:
    """The trajectory-conditioned perceptual model (`model.perceptual`): 21 body joints × 7 features per frame
    (local wxyz quaternion, canonical position) and 12 head features per frame, width `d_model`, `num_blocks`
    blocks of MLP + spatial attention over joints + temporal attention over frames, `num_heads` heads,
    `d_feedforward` hidden units in each MLP. The paper's model is d = 1024, B = 5."""

    d_model: int = 1024
    num_blocks: int = 5
    num_heads: int = 8
    d_feedforward: int = 4096


#: Named sizes: the paper's (GPU) and small ones for CPUs and tests.
PERCEPTUAL_PRESETS: dict[str, PerceptualConfig] = {
    "paper": PerceptualConfig(),
    "cpu": PerceptualConfig(d_model=64, num_blocks=2, num_heads=4, d_feedforward=128),
    "tiny": PerceptualConfig(d_model=32, num_blocks=1, num_heads=2, d_feedforward=64),
}


@dataclass(frozen=True)
class TrainRewardConfig:
    """`egogrpo train-reward`: InfoNCE training of the perceptual model (paper Eq. 9, Appendix C).

    data:               HDF5 motion file (its `train_splits` give the positives and the conditions)
    prior:              the policy whose last-three-step x̂₀ are the hard negatives (checkpoint or "default")
    run_dir:            a new folder (never overwritten); resume with `resume=True`
    model:              the perceptual model's size
    negatives:          "policy" (x̂₀ of the prior's last three sampling steps, one step at random per negative)
                        or "gt-noise" (α·N(0, 1) added to the ground truth's packed state, rotations re-projected)
    alpha:              α of "gt-noise" (unitless: the state holds rotation-matrix entries, betas, contacts)
    num_negatives:      negatives per condition (paper: 15)
    temperature:        δ of InfoNCE, logits s/δ for scores s ∈ (0, 1) (paper: 0.07)
    min_negative_error: a negative whose MPJPE to the ground truth (placed on the same CPF) is below this many
                        metres is a false negative and left out of the loss and the accuracy
    batch_size:         conditions per step, each with 1 positive and `num_negatives` negatives (paper: 16)
    batch_reuse:        R: each batch of conditions serves R consecutive steps, its policy rollouts computed once
                        (each step re-draws which of the last three x̂₀ each negative takes; gt-noise negatives are
                        drawn afresh); 1 (paper): new conditions and rollouts every step. R > 1 divides the rollout
                        cost of policy negatives by R, for CPUs
    learning_rate, weight_decay, grad_clip: AdamW (paper lr 1e-4) with gradient-norm clipping
    warmup_steps:       linear learning-rate warm-up over this many steps, then constant (0: none)
    crop_length:        frames per motion (T)
    augment:            on-the-fly augmentation of the conditions and their positives, train-prior's
                        (`AugmentConfig`; off by default): more varied motion for the same data
    sampler:            the prior's sampler for the policy negatives
    val_every:          Accuracy and Wrong Count (paper Eq. 21) on `val_windows` windows of `val_split`, each against
                        `num_negatives` fixed held-out negatives of the same kind, every N steps (0: never)
    """

    data: str
    prior: str
    run_dir: str
    body: str = "default"
    model: PerceptualConfig = field(default_factory=lambda: PERCEPTUAL_PRESETS["cpu"])
    negatives: str = "policy"
    alpha: float = 0.05
    num_negatives: int = 15
    temperature: float = 0.07
    min_negative_error: float = 0.005
    batch_size: int = 16
    batch_reuse: int = 1
    learning_rate: float = 1e-4
    weight_decay: float = 1e-2
    grad_clip: float = 1.0
    warmup_steps: int = 0
    max_steps: int = 2000
    log_every: int = 10
    checkpoint_every: int = 200
    crop_length: int = 128
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train_splits: tuple[str, ...] = ("train",)
    val_split: str = "val"
    val_windows: int = 16
    val_every: int = 0
    seed: int = 0
    resume: bool = False
    device: str = "auto"  # "auto" (CUDA when present, else CPU), "cpu" or "cuda"


# --- evaluation ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """`egogrpo eval`: checkpoints on a motion file's split under a named protocol (data_manifests/protocols.json).

    `split`, `samples` and `seeds` override the protocol's values; the record says what was used.
    """

    data: str
    checkpoints: tuple[str, ...]  # checkpoint folders, "default" (the shipped default) or "default-prior"
    protocol: str = "motiongrpo"
    body: str = "default"  # the body model the data was made with: "default" or the SMPL-H/SMPL-X .npz
    split: str | None = None  # a split, several comma-separated ("test,val"), or "all"
    subset: str | None = None  # only the sequences whose name starts with this (e.g. "CMU/", one corpus)
    samples: int | None = None
    seeds: int | None = None  # use seeds 0 … N−1
    guidance: str | None = None  # "none" or "post" (test-time refinement after sampling, EgoAllo's post guidance)
    baseline: bool = False  # add a row: the mean training pose at the head (see `baseline_from`)
    baseline_from: str | None = None  # the baseline's training data: a motion file's train split (else the
    # checkpoint's extra.mean_training_pose, else the evaluated file's train split when it is not evaluated)
    out: str | None = None  # write OUT.json, OUT.md and OUT.csv
    overwrite: bool = False  # replace existing OUT.json, OUT.md, OUT.csv
    device: str = "auto"  # "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N"
    chunk_size: int = 64  # windows sampled at once (results do not depend on it)
    projection: str | None = None  # override the protocol sampler's SO(3) projection: "svd" or "polar"
    solver: str | None = None  # override the protocol's sampler: "egoallo", "ddim" (η = 0) or "dpmpp2m" (SamplerConfig)
    steps: int | None = None  # with --solver ddim/dpmpp2m: the number of transitions
    spacing: str | None = None  # with --solver ddim/dpmpp2m: "linear" or "quadratic" timesteps
    bf16: bool = False  # bf16 autocast of the denoiser while sampling (faster; the record says so)
    reward: str | None = None  # a perceptual checkpoint (train-reward): adds Accuracy / Wrong Count (paper Eq. 21)
    combine: str = (
        "none"  # test-time: "mean" of `candidates` samples, or the "best" the verifier scores (model.combine)
    )
    candidates: int = 4  # samples drawn per window and seed for --combine mean/best
    verifier: str | None = None  # --combine best: the perceptual checkpoint (train-reward) that scores the candidates


# --- recovery --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RefineConfig:
    """Weights and solver settings of `refine` (EgoAllo's defaults, reference/egoallo.md §10).

    prior_rotation_weight:        Log(R_initᵀR) per joint (1/rad)
    prior_position_weight:        torso joint positions to their initial world positions (1/m)
    delta_init_smoothness_weight: change between frames of the deviation from init (1/rad)
    delta_smoothness_weight:      rotation change between frames (1/rad)
    velocity_smoothness_weight:   second difference of the local rotations (1/rad)
    foot_skate_weight:            contact-weighted world displacement of ankles and toes per frame (1/m)
    wrist_position_weight:        wrist joint to the observed wrist position, × confidence (1/m)
    palm_orientation_weight:      wrist's palm normal to the observed one, × confidence (unit vectors)
    use_wrists:                   use wrist/palm observations when `refine` is given them
    iterations:                   Levenberg–Marquardt steps (EgoAllo: 20 after sampling, 5 inside)
    lambda_initial:               initial Marquardt damping λ (jaxls' lambda_initial)
    lambda_factor:                λ is divided by this after an accepted step, multiplied after a rejected one
    float64:                      solve in float64 (the result is cast back to the state's dtype)
    torso_joints:                 22-joint indices of the position prior (EgoAllo's [0, 1, 2, 5, 8] + 1)
    foot_joints:                  22-joint indices of the skating term (ankles, toes)
    palm_normal_local:            palm normal in the wrist joint's frame (rest frame: palms face −y)
    """

    prior_rotation_weight: float = 1.0
    prior_position_weight: float = 5.0
    delta_init_smoothness_weight: float = 10.0
    delta_smoothness_weight: float = 1.0
    velocity_smoothness_weight: float = 5.0
    foot_skate_weight: float = 30.0
    wrist_position_weight: float = 50.0
    palm_orientation_weight: float = 10.0
    use_wrists: bool = True
    iterations: int = 20
    lambda_initial: float = 0.1
    lambda_factor: float = 10.0
    float64: bool = False
    torso_joints: tuple[int, ...] = (1, 2, 3, 6, 9)
    foot_joints: tuple[int, ...] = (7, 8, 10, 11)
    palm_normal_local: tuple[float, float, float] = (0.0, -1.0, 0.0)


@dataclass(frozen=True)
class RecoverConfig:
    """`egogrpo recover`: full-body motion from an Aria recording's MPS trajectory (and VRS calibration)."""

    recording: str  # the recording folder (MPS outputs below it; a .vrs inside is used for calibration)
    out: str  # output folder: recovered.npz (+ joints.csv, motion.bvh when asked)
    vrs: str | None = None  # the VRS to read the device calibration (T_device_cpf) from
    mps: str | None = None  # the MPS output folder, if not below the recording folder
    checkpoint: str = "default"  # "default" (the shipped prior) or a checkpoint folder
    body: str = "default"  # "default" or the SMPL-H .npz the checkpoint was trained with
    floor_z: float | None = None  # override the floor height estimated from the point cloud (metres, world z)
    samples: int = 1
    seed: int = 0
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    device: str = "auto"  # where to sample: "auto" (CUDA when present, else CPU), "cpu", "cuda" or "cuda:N"
    combine: str = "none"  # "mean" of `samples` samples, or the "best" the verifier scores: one motion (model.combine)
    verifier: str | None = None  # --combine best: the perceptual checkpoint (train-reward) that scores the samples
    refine: bool = False  # test-time refinement (priors, smoothness, foot skating, wrists) after sampling
    refinement: RefineConfig = field(default_factory=RefineConfig)
    write_csv: bool = False  # world joint positions as CSV
    write_bvh: bool = False  # the motion as BVH (centimetres, y-up) for animation tools
    overwrite: bool = False

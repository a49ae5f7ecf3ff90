"""The diffusion sampler as a policy: rollouts and log-probability recomputation owned by one object.

`DiffusionPolicy` holds everything both sides must agree on — the timestep plan, a (K, 3) table of
[A, B, σ] per transition built once from the float64 schedule and kept on the device, the SDE window,
the SO(3) projection, the window stitching and the log-probability weighting — so a rollout and a
later recomputation of its log-probabilities cannot diverge (reference/grpo-for-diffusion.md §3, §7):

    policy = DiffusionPolicy(schedule, sampler_config, project=body_rotation_projection(num_betas))
    rollout = policy.rollout(denoise_fn, cond, ids)          # cond (B, G, L, C): one condition per member
    batch = policy.transitions(rollout, rows, positions)     # any subset of MDP transitions, flat rows
    log_prob, mean = policy.log_prob_and_mean(denoise_fn, batch)   # fp32, autocast off, differentiable

Transition k goes from plan[k] to plan[k+1] (k = 0 is T → …). Transitions with σ = 0 (the last one,
and every one outside `SamplerConfig.stochastic_steps`) are deterministic and outside the MDP.

Noise is addressed, not drawn in sequence (`egogrpo.model.noise`): x_T of a row is keyed by
(seed, iteration, group) — shared by the group's members, as Algorithm 1 — or by (…, member) when
`share_initial` is off; the noise of transition k by (seed, iteration, group, member, k). A row's
rollout is therefore the same whatever the batch layout, chunking or number of processes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import torch
from jaxtyping import Float, Int
from torch import Tensor

from egogrpo.config import SamplerConfig
from egogrpo.errors import EgogrpoError
from egogrpo.model import noise
from egogrpo.model.sampler import (
    BodyRotationProjection,
    DenoiseFn,
    ProjectFn,
    gaussian_mean_kl,
    multistep_weights,
    predict_x0_stitched,
    step_coefficients,
    timestep_plan,
    transition_log_prob,
    transition_mean,
)
from egogrpo.model.schedule import NoiseSchedule

#: How many final x̂₀ predictions a recorded rollout keeps (the reward model's hard negatives).
NUM_LAST_PREDICTIONS = 3


@dataclass(frozen=True, eq=False)
class RolloutIds:
    """Which random streams a rollout's rows use: rows are (group, member) pairs.

    group_ids:  (B,) global id of each condition (group) in this iteration
    member_ids: (B, G) global member index of each row within its group
    share_initial: one x_T per group (Algorithm 1) instead of one per member
    """

    seed: int
    iteration: int
    group_ids: Int[Tensor, "B"]  # noqa: F821
    member_ids: Int[Tensor, "B G"]
    share_initial: bool = True

    @classmethod
    def grid(
        cls, seed: int, iteration: int, num_groups: int, group_size: int, share_initial: bool = True
    ) -> RolloutIds:
        """Groups 0 … B−1 with members 0 … G−1 each (one process holding whole groups)."""
        members = torch.arange(group_size).expand(num_groups, group_size)
        return cls(seed, iteration, torch.arange(num_groups), members, share_initial)


@dataclass(frozen=True, eq=False)
class Rollout:
    """A batch of sampling trajectories. Each stored latent appears once: x_t of transition k+1 is x_prev of k.

    latents:           (B, G, P, L, D) the chain positions `latent_positions` (0 = x_T, K = the final sample)
    cond:              (B, G, L, C) the condition each member saw
    log_probs:         (B, G, M) per-dimension-mean log-probabilities of the MDP transitions `mdp_steps`
    x0_hat_last:       (B, G, 3, L, D) x̂₀ predicted at the last three transitions (None unless recorded)
    """

    latents: Float[Tensor, "B G P L D"]
    latent_positions: tuple[int, ...]
    cond: Float[Tensor, "B G L C"]
    log_probs: Float[Tensor, "B G M"]
    mdp_steps: tuple[int, ...]
    x0_hat_last: Float[Tensor, "B G 3 L D"] | None
    timesteps: tuple[int, ...]

    @property
    def final(self) -> Float[Tensor, "B G L D"]:
        """The sampled motions (packed states)."""
        return self.latents[:, :, self.latent_positions.index(len(self.timesteps) - 1)]

    def latent(self, position: int) -> Float[Tensor, "B G L D"]:
        return self.latents[:, :, self.latent_positions.index(position)]


@dataclass(frozen=True, eq=False)
class Transitions:
    """Flat rows of stored transitions, each with its own timestep (a batch may mix steps).

    step: transition index k into the plan; row: flat trajectory index b·G + g in the rollout.
    """

    x_t: Float[Tensor, "N L D"]
    x_prev: Float[Tensor, "N L D"]
    cond: Float[Tensor, "N L C"]
    step: Int[Tensor, "N"]  # noqa: F821
    row: Int[Tensor, "N"]  # noqa: F821
    old_log_prob: Float[Tensor, "N"]  # noqa: F821

    def __len__(self) -> int:
        return self.step.shape[0]

    def select(self, index: Int[Tensor, "n"]) -> Transitions:  # noqa: F821
        """The rows `index` (e.g. one micro-batch)."""
        return Transitions(*(getattr(self, f)[index] for f in ("x_t", "x_prev", "cond", "step", "row", "old_log_prob")))


@dataclass(frozen=True, eq=False)
class Replay:
    """What `DiffusionPolicy.denoise_from` reached: the final samples and, with a reference, the mean KL."""

    final: Float[Tensor, "B G L D"]
    kl: Float[Tensor, "B G"] | None  # per member: mean per-step Gaussian KL of the means to the reference


class DiffusionPolicy:
    """The sampler of `config` over `schedule` as a stochastic policy (see the module docstring).

    project:     the x̂₀ projection (EgoAllo: `body_rotation_projection(num_betas)`), in rollouts and log-probs alike
    dim_weights: per-feature weights of the log-probability (None: the exact per-dimension mean)
    """

    def __init__(
        self,
        schedule: NoiseSchedule,
        config: SamplerConfig,
        project: ProjectFn | None = None,
        dim_weights: Float[Tensor, "D"] | None = None,  # noqa: F821
        device: torch.device | str = "cpu",
    ) -> None:
        if config.projection not in ("svd", "polar"):
            raise EgogrpoError(f"sampler projection must be 'svd' or 'polar', got {config.projection!r}")
        if isinstance(project, BodyRotationProjection) and project.method is None:
            project = dataclasses.replace(project, method=config.projection)  # the sampler config's SO(3) method
        self.config, self.project, self.device = config, project, torch.device(device)
        self.schedule = schedule
        self.plan = tuple(timestep_plan(config, schedule.num_timesteps))
        K = len(self.plan) - 1
        scales = torch.ones(K, dtype=torch.float64)
        if config.stochastic_steps is not None:
            first, stop = config.stochastic_steps
            if not 0 <= first < stop <= K:
                raise EgogrpoError(f"sampler stochastic_steps must satisfy 0 ≤ first < stop ≤ {K}, got {first, stop}")
            scales.zero_()[first:stop] = 1.0
        t = torch.tensor(self.plan[:-1], dtype=torch.long)
        t_prev = torch.tensor(self.plan[1:], dtype=torch.long)
        c = step_coefficients(schedule, config, t, t_prev, scales)
        self.table = torch.stack((c.a, c.b, c.std), dim=-1).to(device=self.device, dtype=torch.float32)  # (K, 3)
        self.t = t.to(self.device)
        self.mdp_steps = tuple(k for k in range(K) if float(c.std[k]) > 0.0)
        # DPM-Solver++(2M): each transition moves towards w·x̂₀_k + w′·x̂₀_{k−1} (None: single-step rules)
        self.multistep = (
            multistep_weights(schedule, self.plan).to(device=self.device, dtype=torch.float32)
            if config.rule == "dpmpp2m"
            else None
        )
        self.dim_weights = None if dim_weights is None else dim_weights.to(self.device, torch.float32)

    @property
    def num_transitions(self) -> int:
        return len(self.plan) - 1

    # --- the one mean formula ---------------------------------------------------------------------

    def _x0_hat(self, denoise_fn: DenoiseFn, x_t: Tensor, t: int | Tensor, cond: Tensor) -> Tensor:
        c = self.config
        return predict_x0_stitched(denoise_fn, x_t, t, cond, c.window, c.overlap, self.project, c.window_rule)

    @staticmethod
    def _mean(coefficients: Float[Tensor, "*batch 3"], x_t: Tensor, x0_hat: Tensor) -> Tensor:
        """`transition_mean` of a table row [A, B, σ] (rollouts and recomputation both go through here)."""
        return transition_mean(coefficients[..., 0], coefficients[..., 1], x_t, x0_hat)

    def _advance(
        self,
        denoise_fn: DenoiseFn,
        k: int,
        x: Float[Tensor, "B G L D"],
        cond_rows: Float[Tensor, "BG L C"],
        ids: RolloutIds,
        previous_x0: Float[Tensor, "B G L D"] | None = None,
    ) -> tuple[Float[Tensor, "B G L D"], Float[Tensor, "B G L D"], Float[Tensor, "B G L D"]]:
        """Transition k from x: (x_next, μ, x̂₀), x_next = μ + σ_k·z with z keyed by (…, group, member, k).

        `previous_x0`: x̂₀ of transition k − 1, for the multistep rule (None at the first step)."""
        B, G, L, D = x.shape
        device = x.device
        x0_hat = self._x0_hat(denoise_fn, x.reshape(B * G, L, D), int(self.plan[k]), cond_rows).reshape(B, G, L, D)
        coefficients = self.table[k].to(device)
        target = x0_hat
        if self.multistep is not None and previous_x0 is not None:
            w = self.multistep[k].to(device)
            target = w[0] * x0_hat + w[1] * previous_x0
        mean = self._mean(coefficients, x, target)
        if k not in self.mdp_steps:
            return mean, mean, x0_hat
        groups, members = ids.group_ids.to(device)[:, None], ids.member_ids.to(device)
        keys = noise.stream_key(ids.seed, noise.PURPOSE_STEP, ids.iteration, groups, members, k, device=device)
        return mean + coefficients[2] * noise.normal(keys, (L, D)), mean, x0_hat

    # --- rollouts -----------------------------------------------------------------------------------

    @torch.no_grad()
    def rollout(
        self,
        denoise_fn: DenoiseFn,
        cond: Float[Tensor, "B G L C"],
        ids: RolloutIds,
        state_dim: int,
        record: bool = True,
        keep: tuple[int, ...] = (),
        last_predictions: bool | None = None,
        on_step: Callable[[int, int], None] | None = None,
    ) -> Rollout:
        """Sample every member of every group; with `record`, keep what recomputing log-probs needs.

        Without `record` only the final samples are kept (evaluation, recovery). `keep`: further chain
        positions (0 = x_T … K) to store, e.g. DRaFT's starting point K − k (`denoise_from`).
        `last_predictions`: keep the x̂₀ of the last three steps (`Rollout.x0_hat_last`; default: with `record`)
        — the perceptual model's negatives need only these, not the latents of every step.
        `on_step(k, K)`: called after each of the K transitions (progress).
        """
        keep_last = record if last_predictions is None else last_predictions
        B, G, L, C = cond.shape
        device, K = cond.device, self.num_transitions
        if ids.member_ids.shape != (B, G) or ids.group_ids.shape != (B,):
            raise ValueError(f"ids must be (B,) groups and (B, G) members for cond of shape {tuple(cond.shape)}")
        if not all(0 <= p <= K for p in keep):
            raise ValueError(f"keep positions must be in 0..{K}, got {keep}")
        groups, members = ids.group_ids.to(device)[:, None], ids.member_ids.to(device)
        if ids.share_initial:
            keys = noise.stream_key(ids.seed, noise.PURPOSE_INITIAL, ids.iteration, groups, 0, device=device)
            x = noise.normal(keys, (L, state_dim)).expand(B, G, L, state_dim)
        else:
            keys = noise.stream_key(ids.seed, noise.PURPOSE_INITIAL, ids.iteration, groups, members + 1, device=device)
            x = noise.normal(keys, (L, state_dim))
        stored_positions = {K, *keep}
        if record:
            stored_positions |= {k for step in self.mdp_steps for k in (step, step + 1)}
        positions = tuple(sorted(stored_positions))
        stored = {0: x} if 0 in stored_positions else {}
        log_probs, last = [], []
        cond_rows = cond.reshape(B * G, L, C)
        x0_hat = None
        for k in range(K):
            x, mean, x0_hat = self._advance(denoise_fn, k, x, cond_rows, ids, previous_x0=x0_hat)
            if k in self.mdp_steps:
                log_probs.append(transition_log_prob(x, mean, self.table[k, 2].to(device), self.dim_weights))
            if keep_last and k >= K - NUM_LAST_PREDICTIONS:
                last.append(x0_hat)
            if k + 1 in stored_positions:
                stored[k + 1] = x
            if on_step is not None:
                on_step(k + 1, K)
        return Rollout(
            latents=torch.stack([stored[p] for p in positions], dim=2),
            latent_positions=positions,
            cond=cond,
            log_probs=torch.stack(log_probs, dim=-1) if log_probs else cond.new_zeros(B, G, 0),
            mdp_steps=self.mdp_steps,
            x0_hat_last=torch.stack(last, dim=2) if keep_last and last else None,
            timesteps=self.plan,
        )

    def sample(
        self,
        denoise_fn: DenoiseFn,
        cond: Float[Tensor, "B L C"],
        state_dim: int,
        seed: int,
        num_samples: int = 1,
        share_initial: bool = False,
        on_step: Callable[[int, int], None] | None = None,
    ) -> Float[Tensor, "B S L D"]:
        """`num_samples` final samples per conditioning sequence (evaluation, recovery): sequence b is group b.

        Each seed is an independent stream; members do not share x_T unless asked.
        """
        B = cond.shape[0]
        ids = RolloutIds.grid(seed, 0, B, num_samples, share_initial)
        cond = cond[:, None].expand(B, num_samples, *cond.shape[1:])
        return self.rollout(denoise_fn, cond, ids, state_dim, record=False, on_step=on_step).final

    def denoise_from(
        self,
        denoise_fn: DenoiseFn,
        x: Float[Tensor, "B G L D"],
        first: int,
        cond: Float[Tensor, "B G L C"],
        ids: RolloutIds,
        reference: DenoiseFn | None = None,
    ) -> Replay:
        """The final samples reached from chain position `first` (x = the rollout's latent there) by transitions
        first … K−1 with the rollout's keyed noise — differentiable, float32, autocast off (DRaFT-K, K = K_total − first).

        At the rollout's parameters it reproduces the rollout's final samples (to float32 rounding of the layout).
        With a `reference` denoiser, also each member's mean over the replayed stochastic transitions of the
        per-step Gaussian KL of the transition means (`gaussian_mean_kl`), μ_θ against the reference's μ at the
        same latent (the reference's side is a constant: no gradient flows through it).
        """
        K = self.num_transitions
        if not 0 <= first <= K:
            raise ValueError(f"first must be in 0..{K}, got {first}")
        if self.multistep is not None:
            raise EgogrpoError("the multistep sampler (dpmpp2m) is for inference only; post-train with egoallo or ddim")
        B, G, L, C = cond.shape
        kls = []
        with torch.autocast(device_type=x.device.type, enabled=False):
            x, cond_rows = x.float(), cond.reshape(B * G, L, C).float()
            for k in range(first, K):
                x_next, mean, _ = self._advance(denoise_fn, k, x, cond_rows, ids)
                if reference is not None and k in self.mdp_steps:
                    with torch.no_grad():
                        reference_x0 = self._x0_hat(
                            reference, x.reshape(B * G, *x.shape[2:]), int(self.plan[k]), cond_rows
                        )
                        coefficients = self.table[k].to(x.device)
                        reference_mean = self._mean(coefficients, x, reference_x0.reshape(x.shape))
                    std = coefficients[2].expand(B * G)
                    kls.append(gaussian_mean_kl(mean.flatten(0, 1), reference_mean.flatten(0, 1), std).reshape(B, G))
                x = x_next
        kl = None if reference is None else (torch.stack(kls).mean(dim=0) if kls else x.new_zeros(B, G))
        return Replay(x, kl)

    # --- log-probabilities ---------------------------------------------------------------------------

    def transitions(
        self,
        rollout: Rollout,
        rows: Int[Tensor, "N"],  # noqa: F821
        positions: Int[Tensor, "N"],  # noqa: F821
    ) -> Transitions:
        """Rows `rows` (flat b·G + g) at MDP positions `positions` (indices into `rollout.mdp_steps`)."""
        if len(rollout.mdp_steps) == 0:
            raise EgogrpoError("the sampler has no stochastic transition: nothing to train (check stochastic_steps)")
        steps = torch.tensor(rollout.mdp_steps, dtype=torch.long)[positions.cpu()]
        index_of = torch.full((len(rollout.timesteps),), -1, dtype=torch.long)  # chain position → stored index
        index_of[list(rollout.latent_positions)] = torch.arange(len(rollout.latent_positions))
        before, after = index_of[steps], index_of[steps + 1]
        flat = rollout.latents.flatten(0, 1)  # (B·G, P, L, D)
        rows_cpu = rows.cpu()
        device = rollout.latents.device
        return Transitions(
            x_t=flat[rows_cpu, before],
            x_prev=flat[rows_cpu, after],
            cond=rollout.cond.flatten(0, 1)[rows_cpu],
            step=steps.to(device),
            row=rows_cpu.to(device),
            old_log_prob=rollout.log_probs.flatten(0, 1)[rows_cpu, positions.cpu()],
        )

    def log_prob_and_mean(
        self, denoise_fn: DenoiseFn, batch: Transitions
    ) -> tuple[Float[Tensor, "N"], Float[Tensor, "N L D"]]:  # noqa: F821
        """log π(x_prev | x_t, c) per row and the policy mean μ_θ, in float32 with autocast disabled.

        Differentiable through `denoise_fn` (unless under no_grad). With the rollout's denoiser and the
        rollout's batch layout it reproduces the stored log-probabilities bit for bit; in another layout it
        agrees to float32 rounding of the denoiser (|Δ log π| ~ 1e-7 on CPU).
        """
        if bool((self.table[batch.step.cpu(), 2] == 0).any()):
            raise ValueError("deterministic transition (σ = 0) in the batch: it has no log-probability")
        device_type = batch.x_t.device.type
        with torch.autocast(device_type=device_type, enabled=False):
            x_t, cond = batch.x_t.float(), batch.cond.float()
            x0_hat = self._x0_hat(denoise_fn, x_t, self.t.to(x_t.device)[batch.step], cond)
            coefficients = self.table.to(x_t.device)[batch.step]  # (N, 3)
            mean = self._mean(coefficients, x_t, x0_hat)
            log_prob = transition_log_prob(batch.x_prev, mean, coefficients[:, 2], self.dim_weights)
        return log_prob, mean

    def denoiser_x0(
        self,
        denoise_fn: DenoiseFn,
        x_t: Float[Tensor, "N L D"],
        t: Int[Tensor, "N"],  # noqa: F821
        cond: Float[Tensor, "N L C"],
    ) -> Float[Tensor, "N L D"]:
        """The denoiser's stitched x̂₀ WITHOUT the SO(3) projection — what the prior's training loss sees — in
        float32 with autocast disabled, differentiable (AWM, DiffusionNFT)."""
        c = self.config
        with torch.autocast(device_type=x_t.device.type, enabled=False):
            return predict_x0_stitched(denoise_fn, x_t.float(), t, cond.float(), c.window, c.overlap, None)

    def step_std(self, steps: Int[Tensor, "N"]) -> Float[Tensor, "N"]:  # noqa: F821
        """σ of transitions `steps` (float32)."""
        return self.table.to(steps.device)[steps, 2]

"""Test-time refinement of a motion on its head trajectory: EgoAllo's guidance optimiser in PyTorch.

reference/egoallo.md §10. The 21 local body rotations of every frame are optimised; betas, contacts
(and hand rotations) are held fixed, and the root is re-placed by head anchoring (§5, `place_on_cpf`)
at every evaluation, so the CPF of the refined body stays exactly on `T_world_cpf`. The objective is a
sum of squared weighted residuals (w = the `RefineConfig` weight; "init" = the state passed in):

    prior_rotation        w · Log(R_initᵀ R)                          per frame, per joint
    prior_position        w · (p_j − p_j,init), torso joints          per frame (world, metres)
    delta_init_smoothness w · Log(D_tᵀ D_{t+1}),  D = R_initᵀ R        consecutive frames, per joint
    delta_smoothness      w · Log(R_tᵀ R_{t+1})                        consecutive frames, per joint
    velocity_smoothness   w · Log(Δ_tᵀ Δ_{t+1}),  Δ_t = R_tᵀ R_{t+1}   frame triples, per joint
    foot_skate            w · c̄ · (p_t − p_{t+1}), ankles and toes     consecutive frames (world, metres)
    wrist_position        w · conf · (p_wrist − target)                per frame, per wrist (world)
    palm_orientation      w · conf · (R_world_wrist n_palm − target)   per frame, per wrist (unit vectors)

with c̄ = (c_t + c_{t+1})/2 the predicted contact averaged over the two frames (not clipped, as EgoAllo).
Log(A) is the SO(3) logarithm (axis-angle, radians). Each rotation residual has the same norm as
EgoAllo's form (Log(R⁻¹R_init), Log of the change of R⁻¹R_init), so the costs are identical.

Joint indices are the 22-joint order of `egogrpo.body.topology` (pelvis 0). EgoAllo's torso joints
[0, 1, 2, 5, 8] index its root-less 21-joint list (left_hip, right_hip, spine1, spine2, spine3), i.e.
our [1, 2, 3, 6, 9]; its foot joints [6, 7, 9, 10] (ankles, toes) are our [7, 8, 10, 11], whose contacts
are `state.contacts[..., j − 1]`. The palm normal is the wrist's local −y axis (EgoAllo's wrist frame
from Aria palm data has −normal as its second column; in the rest pose the palms face down).

Optimiser: Levenberg–Marquardt on the tangent space, R ← R Exp(δ) per joint and frame, with exact
analytic Jacobians (`_linearize`; checked against autograd in the tests) and Marquardt damping
(JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀr. Every residual couples at most three consecutive frames, so JᵀJ is
block-banded (63×63 blocks, two sub-diagonals) and each step is an exact block-banded Cholesky solve.
A step is kept only if it lowers the cost (λ ÷ 10), otherwise λ × 10; so the cost never increases.
Each problem in the batch has its own λ and accept/reject decision.

The optimisation runs without autograd (its output is a constant for any later loss); `refine_costs`
evaluates the same objective differentiably, through forward kinematics.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import NotRequired, TypedDict

import torch
from jaxtyping import Float
from torch import Tensor

from egogrpo.body import BodyModel
from egogrpo.body.topology import HEAD, LEFT_WRIST, NUM_BODY_JOINTS, RIGHT_WRIST
from egogrpo.config import RefineConfig
from egogrpo.geometry import axis_angle_from_matrix, matrix_from_axis_angle
from egogrpo.model.placement import place_on_cpf
from egogrpo.model.state import NUM_BODY_ROTATIONS, MotionState

NUM_VARS = NUM_BODY_ROTATIONS * 3  # tangent dimension of one frame (63)
WRIST_JOINTS = (LEFT_WRIST, RIGHT_WRIST)  # 20, 21


class WristTargets(TypedDict):
    """Observed wrists in the world frame, left then right (Aria wrist/palm tracking).

    wrist_positions  (*batch, T, 2, 3)  metres
    confidence       (*batch, T, 2)     ≤ 0 or NaN where there is no observation (targets there are ignored)
    palm_normals     (*batch, T, 2, 3)  optional; any length, normalised here; NaN = no palm normal
    """

    wrist_positions: Tensor
    confidence: Tensor
    palm_normals: NotRequired[Tensor]


#: The sampler's hook: refines x̂₀ (a MotionState) on the CPF trajectory (*batch, T, 7).
GuidanceFn = Callable[[MotionState, Tensor], MotionState]


def refine(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Float[Tensor, "*batch T 7"],
    config: RefineConfig = RefineConfig(),
    wrists: WristTargets | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> MotionState:
    """Refine `state`'s body rotations (betas, contacts, hands kept) to minimise the guidance costs.

    `state` is also the initialisation the priors pull towards. `T_world_cpf` (wxyz_xyz) broadcasts
    against the state's leading dims. Returns a state of the same shape and dtype. `on_step(i, n)` is called
    after each of the n Levenberg–Marquardt iterations (progress).
    """
    refined, _ = refine_with_history(body, state, T_world_cpf, config, wrists, on_step)
    return refined


def refine_with_history(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Float[Tensor, "*batch T 7"],
    config: RefineConfig = RefineConfig(),
    wrists: WristTargets | None = None,
    on_step: Callable[[int, int], None] | None = None,
) -> tuple[MotionState, Tensor]:
    """`refine`, also returning the total cost (iterations + 1, *batch): before the first and after every step."""
    batch = state.body_rotmats.shape[:-4]
    dtype = torch.float64 if config.float64 else state.body_rotmats.dtype
    with torch.no_grad():
        problem = _Problem.build(body, state, T_world_cpf, state, config, wrists, dtype)
        rotmats, history = _levenberg_marquardt(problem, config, on_step)
    refined = dataclasses.replace(
        state, body_rotmats=rotmats.reshape(state.body_rotmats.shape).to(state.body_rotmats.dtype)
    )
    return refined, history.reshape(-1, *batch)


def refine_costs(
    body: BodyModel,
    state: MotionState,
    T_world_cpf: Float[Tensor, "*batch T 7"],
    init: MotionState,
    config: RefineConfig = RefineConfig(),
    wrists: WristTargets | None = None,
) -> dict[str, Float[Tensor, "*batch"]]:
    """Each cost term (sum of squared weighted residuals) of `state`, the priors referring to `init`.

    Differentiable (autograd through forward kinematics). Betas and contacts are taken from `init`.

    Only the terms that apply are returned (the wrist terms need `wrists` and `config.use_wrists`).
    """
    batch = state.body_rotmats.shape[:-4]
    problem = _Problem.build(body, state, T_world_cpf, init, config, wrists, state.body_rotmats.dtype)
    rotmats = state.body_rotmats.reshape(problem.rotmats_init.shape)
    terms = _linearize(problem, rotmats, problem.place(rotmats), jacobians=False)
    return {term.name: term.residual.square().flatten(1).sum(-1).reshape(batch) for term in terms}


def make_inner_guidance(
    body: BodyModel, config: RefineConfig = RefineConfig(), iterations: int = 5, wrists: WristTargets | None = None
) -> GuidanceFn:
    """EgoAllo's "inner" guidance: `fn(x0_hat_state, T_world_cpf) -> state`, `iterations` LM steps on x̂₀."""
    inner_config = dataclasses.replace(config, iterations=iterations)

    def guidance(x0_hat_state: MotionState, T_world_cpf: Tensor) -> MotionState:
        return refine(body, x0_hat_state, T_world_cpf, inner_config, wrists)

    return guidance


# --- the problem -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Problem:
    """Everything fixed during one refinement, flattened to N = prod(*batch) problems.

    rotmats_init (N, T, 21, 3, 3); T_world_cpf (N, T, 7); betas (N, T, B); torso_init (N, T, k, 3) world;
    foot_contacts (N, T − 1, 4) pair averages; wrist_*, palm_* (N, T, 2, …) or None (0 confidence = unused); sign (22, 22): see `_signs`.
    """

    body: BodyModel
    config: RefineConfig
    rotmats_init: Tensor
    T_world_cpf: Tensor
    betas: Tensor
    torso_init: Tensor
    foot_contacts: Tensor
    sign: Tensor
    wrist_positions: Tensor | None
    wrist_confidence: Tensor | None
    palm_normals: Tensor | None
    palm_confidence: Tensor | None

    @staticmethod
    def build(
        body: BodyModel,
        state: MotionState,
        T_world_cpf: Tensor,
        init: MotionState,
        config: RefineConfig,
        wrists: WristTargets | None,
        dtype: torch.dtype,
    ) -> _Problem:
        device = state.body_rotmats.device
        batch = state.body_rotmats.shape[:-4]
        T = state.body_rotmats.shape[-4]
        if T_world_cpf.shape[-2:] != (T, 7):
            raise ValueError(f"T_world_cpf has shape {tuple(T_world_cpf.shape)}, expected (..., {T}, 7)")
        if body.joints_mean.dtype != dtype or body.joints_mean.device != device:
            body = body.to(device=device, dtype=dtype)

        def flat(x: Tensor, tail: int) -> Tensor:
            return x.to(dtype).expand(*batch, *x.shape[-tail:]).reshape(-1, *x.shape[-tail:])

        rotmats_init = flat(init.body_rotmats, 4)
        T_world_cpf = flat(T_world_cpf, 2)
        betas = flat(init.betas, 2)
        contacts = flat(init.contacts, 2)
        feet = contacts[..., [j - 1 for j in config.foot_joints]]
        p_init, _ = _place(body, betas, rotmats_init, T_world_cpf)
        problem = _Problem(
            body=body,
            config=config,
            rotmats_init=rotmats_init,
            T_world_cpf=T_world_cpf,
            betas=betas,
            torso_init=p_init[:, :, list(config.torso_joints)],
            foot_contacts=0.5 * (feet[:, :-1] + feet[:, 1:]),
            sign=_signs(body.parents[:NUM_BODY_JOINTS]).to(device=device, dtype=dtype),
            wrist_positions=None,
            wrist_confidence=None,
            palm_normals=None,
            palm_confidence=None,
        )
        if wrists is not None and config.use_wrists:
            confidence = flat(wrists["confidence"], 2)
            positions = flat(wrists["wrist_positions"], 3)
            valid = (confidence > 0) & positions.isfinite().all(-1)  # NaN confidence is invalid too
            confidence = torch.where(valid, confidence, 0.0)
            normals, normal_confidence = wrists.get("palm_normals"), None
            if normals is not None:
                normals = flat(normals, 3)
                normal_valid = valid & normals.isfinite().all(-1)
                normals = torch.where(normal_valid[..., None], normals, 1.0)
                normals = normals / torch.linalg.vector_norm(normals, dim=-1, keepdim=True).clamp_min(1e-9)
                normal_confidence = torch.where(normal_valid, confidence, 0.0)
            problem = dataclasses.replace(
                problem,
                wrist_positions=torch.where(valid[..., None], positions, 0.0),
                wrist_confidence=confidence,
                palm_normals=normals,
                palm_confidence=normal_confidence,
            )
        return problem

    def place(self, rotmats: Tensor) -> tuple[Tensor, Tensor]:
        return _place(self.body, self.betas, rotmats, self.T_world_cpf)


def _place(body: BodyModel, betas: Tensor, rotmats: Tensor, T_world_cpf: Tensor) -> tuple[Tensor, Tensor]:
    """Head-anchored world joints (`place_on_cpf`): positions (N, T, 22, 3) and rotations (N, T, 22, 3, 3)."""
    state = MotionState(betas=betas, body_rotmats=rotmats, contacts=rotmats.new_zeros(rotmats.shape[:-3]))
    posed = place_on_cpf(body, state, T_world_cpf)
    return posed.p_world_joint, posed.R_world_joint


def _signs(parents: tuple[int, ...]) -> Tensor:
    """sign[j, k] = how joint j moves when the local rotation of joint k turns, with the head held fixed.

    Turning k by Exp(ω) turns its subtree (k included) by the world axis a = R_world_k ω about p_k; with
    the head anchored, whichever side of k does not hold the head is the one that turns in the world:
    +1 if j is in k's subtree and the head is not, −1 if the head is and j is not, 0 otherwise.
    """
    n = len(parents)
    in_subtree = torch.zeros(n, n)  # [j, k] = 1 if k is j or an ancestor of j
    for j in range(n):
        k = j
        while k >= 0:
            in_subtree[j, k] = 1.0
            k = parents[k]
    return in_subtree - in_subtree[HEAD][None, :]


# --- residuals and their Jacobians --------------------------------------------------------------------


@dataclass(frozen=True)
class _Term:
    """Weighted residuals of one cost over F = T − span + 1 windows of `span` consecutive frames.

    per_joint: residual (N, F, 21, 3) with jacobians (N, F, 21, 3, 3), one per frame of the window,
               each joint's residual depending on that joint's rotation only;
    otherwise: residual (N, F, m) with jacobians (N, F, m, 63) over all 21 rotations of the frame.
    """

    name: str
    residual: Tensor
    jacobians: tuple[Tensor, ...]
    per_joint: bool


def _skew(v: Tensor) -> Tensor:
    """[v]× (..., 3, 3) with [v]× u = v × u."""
    x, y, z = v.unbind(-1)
    zero = torch.zeros_like(x)
    return torch.stack((zero, -z, y, z, zero, -x, -y, x, zero), dim=-1).reshape(*v.shape, 3)


def _right_jacobian_inverse(phi: Tensor) -> Tensor:
    """J_r⁻¹(φ) (..., 3, 3): d Log(Exp(φ) Exp(ω)) / dω at ω = 0. (J_l⁻¹(φ) is its transpose.)"""
    theta_sq = phi.square().sum(-1)[..., None, None]
    theta = theta_sq.sqrt().clamp(1e-6, torch.pi - 1e-3)
    large = (1.0 / theta.square()) - (1.0 + torch.cos(theta)) / (2.0 * theta * torch.sin(theta))
    coeff = torch.where(theta_sq < 1e-4, 1.0 / 12.0 + theta_sq / 720.0, large)
    K = _skew(phi)
    return torch.eye(3, dtype=phi.dtype, device=phi.device) + 0.5 * K + coeff * (K @ K)


def _relative_log(A: Tensor, B: Tensor) -> tuple[Tensor, Tensor]:
    """φ = Log(Aᵀ B) and J_r⁻¹(φ): d φ / d ω_B = J_r⁻¹(φ) and d φ / d ω_A = −J_r⁻¹(φ)ᵀ (R ← R Exp(ω))."""
    phi = axis_angle_from_matrix(A.transpose(-1, -2) @ B)
    return phi, _right_jacobian_inverse(phi)


def _rigid_jacobian(vectors: Tensor, owners: list[int], R_world: Tensor, sign: Tensor) -> Tensor:
    """d x / d ω (N, T, 3m, 63) of m world quantities, each rigidly attached to joint `owners[i]`.

    vectors (N, T, m, 21, 3): x − p_k for a point x, or x itself for a direction, for every k = 1..21.
    d x / d ω_k = −sign[owner, k] [vectors_k]× R_world_k (see `_signs`).
    """
    N, T, m = vectors.shape[:3]
    blocks = -_skew(vectors) @ R_world[:, :, None, 1:]  # (N, T, m, 21, 3, 3)
    blocks = blocks * sign[owners][:, 1:, None, None]
    return blocks.permute(0, 1, 2, 4, 3, 5).reshape(N, T, 3 * m, NUM_VARS)


def _point_jacobian(joints: list[int], p_world: Tensor, R_world: Tensor, sign: Tensor) -> Tensor:
    """d p_j / d ω (N, T, 3·len(joints), 63) for world joint positions."""
    levers = p_world[:, :, joints, None, :] - p_world[:, :, None, 1:, :]
    return _rigid_jacobian(levers, joints, R_world, sign)


def _linearize(problem: _Problem, rotmats: Tensor, placed: tuple[Tensor, Tensor], jacobians: bool) -> list[_Term]:
    """Every cost term at `rotmats` (N, T, 21, 3, 3), with its Jacobians when `jacobians`."""
    config = problem.config
    p_world, R_world = placed
    R, R0 = rotmats, problem.rotmats_init
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    terms = []

    # Rotation priors and smoothness (per joint).
    w = config.prior_rotation_weight
    phi, Jr = _relative_log(R0, R)
    terms.append(_Term("prior_rotation", w * phi, (w * Jr,) if jacobians else (), per_joint=True))

    deviation = R0.transpose(-1, -2) @ R
    for name, w, X in (
        ("delta_init_smoothness", config.delta_init_smoothness_weight, deviation),
        ("delta_smoothness", config.delta_smoothness_weight, R),
    ):
        phi, Jr = _relative_log(X[:, :-1], X[:, 1:])
        J = (-w * Jr.transpose(-1, -2), w * Jr) if jacobians else ()
        terms.append(_Term(name, w * phi, J, per_joint=True))

    w = config.velocity_smoothness_weight
    delta = R[:, :-1].transpose(-1, -2) @ R[:, 1:]  # Δ_t = R_tᵀ R_{t+1}
    phi, Jr = _relative_log(delta[:, :-1], delta[:, 1:])
    J = ()
    if jacobians:
        Jl, delta_T = Jr.transpose(-1, -2), delta[:, :-1].transpose(-1, -2)
        J = (w * Jl @ delta_T, -w * Jl @ (eye + delta_T), w * Jr)
    terms.append(_Term("velocity_smoothness", w * phi, J, per_joint=True))

    # Torso positions to their initial world positions.
    N, T = R.shape[:2]
    torso = list(config.torso_joints)
    w = config.prior_position_weight
    residual = w * (p_world[:, :, torso] - problem.torso_init).reshape(N, T, -1)
    J = (w * _point_jacobian(torso, p_world, R_world, problem.sign),) if jacobians else ()
    terms.append(_Term("prior_position", residual, J, per_joint=False))

    # Foot skating: contact-weighted displacement of ankles and toes between consecutive frames.
    feet = list(config.foot_joints)
    scale = (config.foot_skate_weight * problem.foot_contacts).repeat_interleave(3, dim=-1)  # (N, T − 1, 12)
    feet_p = p_world[:, :, feet].reshape(N, T, -1)
    J = ()
    if jacobians:
        Jp = _point_jacobian(feet, p_world, R_world, problem.sign)
        J = (scale[..., None] * Jp[:, :-1], -scale[..., None] * Jp[:, 1:])
    terms.append(_Term("foot_skate", scale * (feet_p[:, :-1] - feet_p[:, 1:]), J, per_joint=False))

    # Wrist observations.
    if problem.wrist_confidence is not None:
        wrists = list(WRIST_JOINTS)
        scale = (config.wrist_position_weight * problem.wrist_confidence).repeat_interleave(3, dim=-1)
        residual = scale * (p_world[:, :, wrists] - problem.wrist_positions).reshape(N, T, -1)
        J = (scale[..., None] * _point_jacobian(wrists, p_world, R_world, problem.sign),) if jacobians else ()
        terms.append(_Term("wrist_position", residual, J, per_joint=False))
        if problem.palm_normals is not None:
            n_local = torch.tensor(config.palm_normal_local, dtype=R.dtype, device=R.device)
            normals = R_world[:, :, wrists] @ n_local  # (N, T, 2, 3)
            scale = (config.palm_orientation_weight * problem.palm_confidence).repeat_interleave(3, dim=-1)
            residual = scale * (normals - problem.palm_normals).reshape(N, T, -1)
            J = ()
            if jacobians:
                vectors = normals[:, :, :, None, :].expand(N, T, 2, NUM_BODY_ROTATIONS, 3)
                J = (scale[..., None] * _rigid_jacobian(vectors, wrists, R_world, problem.sign),)
            terms.append(_Term("palm_orientation", residual, J, per_joint=False))
    return terms


# --- Gauss–Newton normal equations and their block-banded solve ----------------------------------------


def _normal_equations(terms: list[_Term], N: int, T: int, like: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """JᵀJ as blocks and Jᵀr: diag (N, T, 63, 63), sub1[t] = H_{t+1,t}, sub2[t] = H_{t+2,t}, g (N, T, 63)."""
    joint_H = [like.new_zeros(N, max(T - d, 0), NUM_BODY_ROTATIONS, 3, 3) for d in range(3)]
    dense_H = [like.new_zeros(N, max(T - d, 0), NUM_VARS, NUM_VARS) for d in range(3)]
    joint_g = like.new_zeros(N, T, NUM_BODY_ROTATIONS, 3)
    dense_g = like.new_zeros(N, T, NUM_VARS)
    for term in terms:
        F = term.residual.shape[1]
        H, g = (joint_H, joint_g) if term.per_joint else (dense_H, dense_g)
        for a, J_a in enumerate(term.jacobians):
            J_a_T = J_a.transpose(-1, -2)
            g[:, a : a + F] += (J_a_T @ term.residual[..., None])[..., 0]
            for b in range(a + 1):  # block (t + a, t + b) lies on sub-diagonal a − b, indexed by t + b
                H[a - b][:, b : b + F] += J_a_T @ term.jacobians[b]
    eye = torch.eye(NUM_BODY_ROTATIONS, dtype=like.dtype, device=like.device)
    blocks = []
    for d in range(3):
        embedded = torch.einsum("...jab,jk->...jakb", joint_H[d], eye).reshape(N, -1, NUM_VARS, NUM_VARS)
        blocks.append(dense_H[d] + embedded)
    return blocks[0], blocks[1], blocks[2], dense_g + joint_g.reshape(N, T, NUM_VARS)


def _solve_block_banded(diag: Tensor, sub1: Tensor, sub2: Tensor, rhs: Tensor) -> Tensor:
    """Solve H x = rhs for symmetric positive definite H with two block sub-diagonals (block Cholesky).

    diag (N, T, n, n) = H_{t,t}; sub1 (N, T − 1, n, n) = H_{t+1,t}; sub2 (N, T − 2, n, n) = H_{t+2,t};
    rhs (N, T, n). H = L Lᵀ with L lower block-banded; the inverses of its diagonal blocks are kept so
    that the sequential loops are matrix products. A failed factorisation gives NaN (the step is rejected).
    """
    T, n = diag.shape[1], diag.shape[-1]
    eye = torch.eye(n, dtype=diag.dtype, device=diag.device)
    inv: list[Tensor] = []  # L_{t,t}⁻¹
    L1: list[Tensor | None] = [None] * (T + 1)  # L_{t,t−1}
    L2: list[Tensor | None] = [None] * (T + 2)  # L_{t,t−2}
    y: list[Tensor] = []  # L y = rhs
    for t in range(T):
        S, b = diag[:, t], rhs[:, t, :, None]
        if L1[t] is not None:
            S, b = S - L1[t] @ L1[t].mT, b - L1[t] @ y[t - 1]
        if L2[t] is not None:
            S, b = S - L2[t] @ L2[t].mT, b - L2[t] @ y[t - 2]
        L_tt, info = torch.linalg.cholesky_ex(S)
        L_tt = torch.where((info == 0)[:, None, None], L_tt, torch.nan)
        inv.append(torch.linalg.solve_triangular(L_tt, eye, upper=False))
        y.append(inv[t] @ b)
        if t + 1 < T:
            A = sub1[:, t] if L2[t + 1] is None else sub1[:, t] - L2[t + 1] @ L1[t].mT
            L1[t + 1] = A @ inv[t].mT
        if t + 2 < T:
            L2[t + 2] = sub2[:, t] @ inv[t].mT
    x: list[Tensor] = [rhs] * T  # Lᵀ x = y
    for t in reversed(range(T)):
        b = y[t]
        if t + 1 < T:
            b = b - L1[t + 1].mT @ x[t + 1]
        if t + 2 < T:
            b = b - L2[t + 2].mT @ x[t + 2]
        x[t] = inv[t].mT @ b
    return torch.stack(x, dim=1)[..., 0]


def _total_cost(terms: list[_Term]) -> Tensor:
    return sum(term.residual.square().flatten(1).sum(-1) for term in terms)


def _levenberg_marquardt(
    problem: _Problem, config: RefineConfig, on_step: Callable[[int, int], None] | None = None
) -> tuple[Tensor, Tensor]:
    """Rotations (N, T, 21, 3, 3) after `config.iterations` LM steps, and the cost history (iterations + 1, N)."""
    R = problem.rotmats_init
    N, T = R.shape[:2]
    placed = problem.place(R)
    cost = _total_cost(_linearize(problem, R, placed, jacobians=False))
    lam = torch.full_like(cost, config.lambda_initial)
    history = [cost]
    for iteration in range(config.iterations):
        terms = _linearize(problem, R, placed, jacobians=True)
        diag, sub1, sub2, g = _normal_equations(terms, N, T, R)
        damping = torch.diagonal(diag, dim1=-2, dim2=-1).clamp_min(1e-9) * lam[:, None, None]
        diag = diag + torch.diag_embed(damping)
        step = -_solve_block_banded(diag, sub1, sub2, g)
        R_new = R @ matrix_from_axis_angle(step.reshape(N, T, NUM_BODY_ROTATIONS, 3))
        placed_new = problem.place(R_new)
        cost_new = _total_cost(_linearize(problem, R_new, placed_new, jacobians=False))
        accept = cost_new < cost  # False for NaN
        R = torch.where(accept[:, None, None, None, None], R_new, R)
        placed = tuple(
            torch.where(accept.reshape(N, *[1] * (new.dim() - 1)), new, old)
            for new, old in zip(placed_new, placed, strict=True)
        )
        cost = torch.where(accept, cost_new, cost)
        lam = torch.where(accept, lam / config.lambda_factor, lam * config.lambda_factor).clamp(1e-8, 1e8)
        history.append(cost)
        if on_step is not None:
            on_step(iteration + 1, config.iterations)
    return R, torch.stack(history)

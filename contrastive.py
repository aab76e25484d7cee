"""Critic energy functions and contrastive losses, selectable by name.

phi = sa_encoder(s, a) and psi = g_encoder(g), both [B, R]. An energy turns them into
logits f(s_i, a_i, g_j) (larger = g_j more likely reached from (s_i, a_i)); a contrastive
loss scores a [B, B] logits matrix whose positives sit on the diagonal (g_i is the future
goal sampled for row i, every other g_j a negative drawn from the marginal).

Pure functions, no flax modules, no import of train.py: train.py selects an entry of
ENERGY_FNS and CONTRASTIVE_LOSSES by its `--energy_fn` / `--contrastive_loss_fn` name.

Definitions follow JaxGCRL (MichalBortkiewicz/JaxGCRL, the `src/losses.py` generation that
offers l1/l2/l2_no_sqrt/dot/cos and binary/infonce/.../sppo) unless a docstring says where
and why they differ.

`valid` (bool [B]) is False for a row whose goal is not a real future state (the buffer
gives such rows their own state as goal). Rule used by every loss: an invalid index k
contributes no *anchor* term, i.e. a row-anchored loss drops row k and a column-anchored
loss drops column k, so the invalid pair (k, k) is never treated as a positive. Negatives
stay: the state-action and goal of an invalid row are still fair draws from the marginals,
and the forward InfoNCE must keep today's behaviour (which contrasts every row against all
B goals).
"""

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

HIGHEST = jax.lax.Precision.HIGHEST


# =============================================================================
# Helpers
# =============================================================================


def safe_sqrt(x: jax.Array) -> jax.Array:
    """sqrt with gradient 0 (not inf/NaN) at x = 0."""
    positive = x > 0
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, x, 1.0)), 0.0)


def masked_mean(x: jax.Array, valid: jax.Array) -> jax.Array:
    w = valid.astype(x.dtype)
    return jnp.sum(x * w) / jnp.maximum(jnp.sum(w), 1.0)


def _squared_distances(phi: jax.Array, psi: jax.Array) -> jax.Array:
    """||phi_i - psi_j||^2 for all pairs, from one B x B matmul: [B, B], off-diagonal only exact.

    |phi_i|^2 + |psi_j|^2 - 2 phi_i . psi_j avoids the B x B x R difference tensor and its
    backward. HIGHEST keeps TF32 GPUs from losing precision; the clip removes rounding below 0.
    The diagonal is where the sum cancels worst, so callers overwrite it with exact values.
    """
    cross = jnp.matmul(phi, psi.T, precision=HIGHEST)
    squared = jnp.sum(phi**2, axis=-1)[:, None] + jnp.sum(psi**2, axis=-1)[None, :] - 2.0 * cross
    return jnp.maximum(squared, 0.0)


def _with_diagonal(pairwise: jax.Array, diagonal: jax.Array) -> jax.Array:
    return jnp.where(jnp.eye(pairwise.shape[0], dtype=bool), diagonal[:, None], pairwise)


def _normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
    # rsqrt of a floored squared norm: a zero vector maps to 0 with a finite gradient.
    return x * jax.lax.rsqrt(jnp.maximum(jnp.sum(x**2, axis=-1, keepdims=True), eps))


# =============================================================================
# Energies: pairwise [B, R] x [B, R] -> [B, B] and matched -> [B]
# =============================================================================


def l2_matched(phi: jax.Array, psi: jax.Array) -> jax.Array:
    return -safe_sqrt(jnp.sum((phi - psi) ** 2, axis=-1))


def l2_pairwise(phi: jax.Array, psi: jax.Array) -> jax.Array:
    """-||phi_i - psi_j||_2 (the paper's energy; the sign makes larger mean closer)."""
    energy = -safe_sqrt(_squared_distances(phi, psi))
    # Positives are the pairs the critic pulls together: take them from the differences.
    return _with_diagonal(energy, l2_matched(phi, psi))


def l2_no_sqrt_matched(phi: jax.Array, psi: jax.Array) -> jax.Array:
    return -jnp.sum((phi - psi) ** 2, axis=-1)


def l2_no_sqrt_pairwise(phi: jax.Array, psi: jax.Array) -> jax.Array:
    """-||phi_i - psi_j||_2^2."""
    return _with_diagonal(-_squared_distances(phi, psi), l2_no_sqrt_matched(phi, psi))


def l1_matched(phi: jax.Array, psi: jax.Array) -> jax.Array:
    return -jnp.sum(jnp.abs(phi - psi), axis=-1)


L1_MAX_ELEMENTS = 1 << 24  # 64 MiB of float32 per chunk of |phi_i - psi_j|


def l1_rows_per_chunk(batch: int, repr_dim: int, max_elements: int = L1_MAX_ELEMENTS) -> int:
    return max(1, min(batch, max_elements // max(batch * repr_dim, 1)))


def l1_pairwise(phi: jax.Array, psi: jax.Array, max_elements: int = L1_MAX_ELEMENTS) -> jax.Array:
    """-||phi_i - psi_j||_1 for all pairs: [B, B].

    No matmul identity exists for the L1 norm, and the naive broadcast would hold a
    B x B x R tensor (4 GiB at B = 4096, R = 64) plus its sign for the backward. Rows go
    through in chunks of C = l1_rows_per_chunk(B, R) rows instead, so the peak is one
    [C, B, R] difference: at most max_elements values (64 MiB float32 by default), forward
    and backward, since each chunk is rematerialised in the backward rather than saved.
    """
    rows = l1_rows_per_chunk(phi.shape[0], phi.shape[1], max_elements)

    # checkpoint: lax.map is a scan, which would otherwise keep every chunk's sign(diff)
    # for the backward, i.e. the whole B x B x R tensor again.
    @jax.checkpoint
    def one_row(phi_i):
        return -jnp.sum(jnp.abs(phi_i[None, :] - psi), axis=-1)

    return jax.lax.map(one_row, phi, batch_size=rows)


def dot_pairwise(phi: jax.Array, psi: jax.Array) -> jax.Array:
    """phi_i . psi_j."""
    return jnp.matmul(phi, psi.T, precision=HIGHEST)


def dot_matched(phi: jax.Array, psi: jax.Array) -> jax.Array:
    return jnp.sum(phi * psi, axis=-1)


COS_TEMPERATURE = 1.0


def cos_pairwise(phi: jax.Array, psi: jax.Array, temperature: float = COS_TEMPERATURE) -> jax.Array:
    """cos(phi_i, psi_j) / temperature.

    JaxGCRL's `cos` has no temperature (this default, 1, reproduces it); its only learned
    scale is the separate opt-in `--use_c_target` parameter c (initialised to 0) that
    multiplies the logits of any energy, which is not reproduced here.
    """
    return jnp.matmul(_normalize(phi), _normalize(psi).T, precision=HIGHEST) / temperature


def cos_matched(phi: jax.Array, psi: jax.Array, temperature: float = COS_TEMPERATURE) -> jax.Array:
    return jnp.sum(_normalize(phi) * _normalize(psi), axis=-1) / temperature


class Energy(NamedTuple):
    pairwise: Callable[[jax.Array, jax.Array], jax.Array]  # [B, R] x [B, R] -> [B, B]
    matched: Callable[[jax.Array, jax.Array], jax.Array]  # [B, R] x [B, R] -> [B]
    formula: str


ENERGY_FNS: dict[str, Energy] = {
    "l2": Energy(l2_pairwise, l2_matched, "-||phi - psi||_2"),
    "l2_no_sqrt": Energy(l2_no_sqrt_pairwise, l2_no_sqrt_matched, "-||phi - psi||_2^2"),
    "l1": Energy(l1_pairwise, l1_matched, "-||phi - psi||_1"),
    "dot": Energy(dot_pairwise, dot_matched, "phi . psi"),
    "cos": Energy(cos_pairwise, cos_matched, "phi . psi / (||phi|| ||psi||)"),
}


# =============================================================================
# Contrastive losses: (logits [B, B], valid [B], logsumexp_penalty) -> (loss, metrics)
# =============================================================================


def critic_metrics(logits: jax.Array, valid: jax.Array) -> dict[str, jax.Array]:
    """The same four numbers for every loss, over valid rows, so logs stay comparable.

    logits_neg averages the off-diagonal logits of valid rows only (the positives on the
    diagonal used to be included, which pulled it towards logits_pos).
    """
    batch = logits.shape[0]
    off_diagonal = ~jnp.eye(batch, dtype=bool)
    neg_weight = off_diagonal & valid[:, None]
    return {
        "categorical_accuracy": masked_mean(jnp.argmax(logits, axis=1) == jnp.arange(batch), valid),
        "logits_pos": masked_mean(jnp.diagonal(logits), valid),
        "logits_neg": jnp.sum(jnp.where(neg_weight, logits, 0.0)) / jnp.maximum(jnp.sum(neg_weight), 1),
        "logsumexp": masked_mean(jax.nn.logsumexp(logits, axis=1), valid),
    }


def _offdiag_logsumexp(x: jax.Array, axis: int) -> jax.Array:
    return jax.nn.logsumexp(jnp.where(jnp.eye(x.shape[0], dtype=bool), -jnp.inf, x), axis=axis)


def infonce_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """Forward InfoNCE: row i picks its goal among all B goals (softmax over columns).

    Per valid row: lse_i - l_ii + penalty * lse_i^2, with lse_i = logsumexp_j l_ij. The
    penalty pins the per-row constant the softmax cannot see. Same numbers as
    train.infonce_loss apart from logits_neg (now off-diagonal only).
    """
    lse = jax.nn.logsumexp(logits, axis=1)
    positive = jnp.diagonal(logits)
    loss = masked_mean(lse - positive + logsumexp_penalty * lse**2, valid)
    return loss, critic_metrics(logits, valid)


def infonce_backward_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """Backward InfoNCE: goal j picks its state-action among all B rows (softmax over rows).

    Column-anchored: the penalty acts on the column logsumexp (the constant per goal this
    softmax cannot see). JaxGCRL penalises the row logsumexp for every loss; for this one
    that leaves the free per-column constant unpinned, hence the change. Columns of invalid
    rows are left out.
    """
    lse = jax.nn.logsumexp(logits, axis=0)
    positive = jnp.diagonal(logits)
    loss = masked_mean(lse - positive + logsumexp_penalty * lse**2, valid)
    return loss, critic_metrics(logits, valid)


def symmetric_infonce_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """Forward + backward InfoNCE, each with its own penalty (a sum, as in JaxGCRL, not a mean)."""
    forward, metrics = infonce_loss(logits, valid, logsumexp_penalty)
    backward, _ = infonce_backward_loss(logits, valid, logsumexp_penalty)
    return forward + backward, metrics


def binary_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """Sigmoid NCE: each pair classified positive (diagonal) or negative (off-diagonal).

    JaxGCRL's weighting: the mean of the B x B binary cross-entropies with labels eye(B),
    so one positive and B - 1 negatives per row, each weighted 1/B. Per valid row:
    (softplus(-l_ii) + sum_{j != i} softplus(l_ij)) / B. Sigmoids fix the logits' absolute
    level themselves, so the logsumexp penalty is a no-op here.
    """
    del logsumexp_penalty
    batch = logits.shape[0]
    eye = jnp.eye(batch, dtype=bool)
    # BCE(l, y=1) = softplus(-l); BCE(l, y=0) = softplus(l).
    bce = jnp.where(eye, jax.nn.softplus(-logits), jax.nn.softplus(logits))
    loss = masked_mean(jnp.sum(bce, axis=1) / batch, valid)
    return loss, critic_metrics(logits, valid)


def _flatnce(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float, axis: int):
    # FlatNCE (Chen et al. 2021, arXiv 2107.01152): per anchor c = logsumexp over negatives
    # of (l_neg - l_pos), optimised through exp(c - stop_gradient(c)), whose value is 1 and
    # whose gradient is that of c. c is returned instead: the same gradient, a loss value
    # worth logging. JaxGCRL also sums over the positive (a 0 term), which turns c into the
    # InfoNCE loss and the gradient into InfoNCE's; the paper's form, without it, is used.
    positive = jnp.diagonal(logits)
    shifted = logits - (positive[:, None] if axis == 1 else positive[None, :])
    c = _offdiag_logsumexp(shifted, axis=axis)
    lse = jax.nn.logsumexp(logits, axis=axis)
    loss = masked_mean(c + logsumexp_penalty * lse**2, valid)
    return loss, critic_metrics(logits, valid)


def flatnce_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """FlatNCE over goals (per row), gradient of logsumexp_{j != i}(l_ij - l_ii).

    Invariant to a per-row constant like InfoNCE, so the row logsumexp penalty applies.
    """
    return _flatnce(logits, valid, logsumexp_penalty, axis=1)


def flatnce_backward_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """FlatNCE over state-actions (per column), with the column logsumexp penalty."""
    return _flatnce(logits, valid, logsumexp_penalty, axis=0)


def fb_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """Forward-backward loss, Monte Carlo form (Touati et al. 2023, "Does Zero-Shot RL Exist?").

    Per valid row: -l_ii + 1/2 mean_{j != i} l_ij^2, as in JaxGCRL. The square fixes the
    scale of the negatives, so the logsumexp penalty is a no-op here.
    """
    del logsumexp_penalty
    batch = logits.shape[0]
    off_diagonal = ~jnp.eye(batch, dtype=bool)
    unif = 0.5 * jnp.sum(jnp.where(off_diagonal, logits**2, 0.0), axis=1) / max(batch - 1, 1)
    loss = masked_mean(unif - jnp.diagonal(logits), valid)
    return loss, critic_metrics(logits, valid)


def _pairwise_margins(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """d_ij = l_ii - l_ij and the off-diagonal mask: positive minus each negative of row i."""
    off_diagonal = ~jnp.eye(logits.shape[0], dtype=bool)
    return jnp.diagonal(logits)[:, None] - logits, off_diagonal


def _row_offdiag_mean(x: jax.Array, off_diagonal: jax.Array) -> jax.Array:
    return jnp.sum(jnp.where(off_diagonal, x, 0.0), axis=1) / max(x.shape[0] - 1, 1)


def dpo_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """DPO-style: the positive preferred over each negative, -log sigmoid(l_ii - l_ij).

    Per valid row, the mean over the B - 1 negatives. JaxGCRL averages over all B columns,
    the j = i term included; that term is the constant log 2, so the two differ by that
    constant and a factor (B - 1)/B. Only differences within a row matter (a pairwise
    softmax), so the row logsumexp penalty applies to pin the row's constant.
    """
    margins, off_diagonal = _pairwise_margins(logits)
    per_row = _row_offdiag_mean(-jax.nn.log_sigmoid(margins), off_diagonal)
    lse = jax.nn.logsumexp(logits, axis=1)
    loss = masked_mean(per_row + logsumexp_penalty * lse**2, valid)
    return loss, critic_metrics(logits, valid)


def ipo_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """IPO-style: each margin l_ii - l_ij regressed to 1, (l_ii - l_ij - 1)^2.

    Mean over the B - 1 negatives of a valid row (JaxGCRL includes j = i, a constant 1).
    Shift-invariant per row like DPO, so the row logsumexp penalty applies.
    """
    margins, off_diagonal = _pairwise_margins(logits)
    per_row = _row_offdiag_mean((margins - 1.0) ** 2, off_diagonal)
    lse = jax.nn.logsumexp(logits, axis=1)
    loss = masked_mean(per_row + logsumexp_penalty * lse**2, valid)
    return loss, critic_metrics(logits, valid)


def sppo_loss(logits: jax.Array, valid: jax.Array, logsumexp_penalty: float):
    """SPPO-style: positives regressed to +1 and negatives to -1.

    JaxGCRL's weighting: the positive's squared error counts B times, so a row's one
    positive weighs as much as its B - 1 negatives; the mean is over all B x B entries.
    Per valid row: (B (l_ii - 1)^2 + sum_{j != i} (l_ij + 1)^2) / B. Absolute targets fix
    the level, so the logsumexp penalty is a no-op here.
    """
    del logsumexp_penalty
    batch = logits.shape[0]
    eye = jnp.eye(batch, dtype=bool)
    squared = jnp.where(eye, batch * (logits - 1.0) ** 2, (logits + 1.0) ** 2)
    loss = masked_mean(jnp.sum(squared, axis=1) / batch, valid)
    return loss, critic_metrics(logits, valid)


LossFn = Callable[[jax.Array, jax.Array, float], tuple[jax.Array, dict[str, jax.Array]]]


class ContrastiveLoss(NamedTuple):
    fn: LossFn
    formula: str  # per valid anchor, before the mean
    penalty_applies: bool  # False: logsumexp_penalty is ignored
    anchor: str  # "row", "column" or "both": the axis whose invalid entries are dropped


CONTRASTIVE_LOSSES: dict[str, ContrastiveLoss] = {
    "infonce": ContrastiveLoss(
        infonce_loss, "logsumexp_j l_ij - l_ii  [+ pen * (logsumexp_j l_ij)^2]", True, "row"
    ),
    "infonce_backward": ContrastiveLoss(
        infonce_backward_loss, "logsumexp_i l_ij - l_jj  [+ pen * (logsumexp_i l_ij)^2]", True, "column"
    ),
    "symmetric_infonce": ContrastiveLoss(symmetric_infonce_loss, "infonce + infonce_backward", True, "both"),
    "binary": ContrastiveLoss(binary_loss, "(softplus(-l_ii) + sum_{j!=i} softplus(l_ij)) / B", False, "row"),
    "flatnce": ContrastiveLoss(
        flatnce_loss, "logsumexp_{j!=i} (l_ij - l_ii)  [+ pen * (logsumexp_j l_ij)^2]", True, "row"
    ),
    "flatnce_backward": ContrastiveLoss(
        flatnce_backward_loss,
        "logsumexp_{i!=j} (l_ij - l_jj)  [+ pen * (logsumexp_i l_ij)^2]",
        True,
        "column",
    ),
    "fb": ContrastiveLoss(fb_loss, "-l_ii + 1/2 mean_{j!=i} l_ij^2", False, "row"),
    "dpo": ContrastiveLoss(
        dpo_loss, "mean_{j!=i} -log sigmoid(l_ii - l_ij)  [+ pen * (logsumexp_j l_ij)^2]", True, "row"
    ),
    "ipo": ContrastiveLoss(
        ipo_loss, "mean_{j!=i} (l_ii - l_ij - 1)^2  [+ pen * (logsumexp_j l_ij)^2]", True, "row"
    ),
    "sppo": ContrastiveLoss(sppo_loss, "(l_ii - 1)^2 + 1/B sum_{j!=i} (l_ij + 1)^2", False, "row"),
}

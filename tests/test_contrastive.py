"""Energies and contrastive losses of contrastive.py on hand-computed inputs.

References are written independently of the implementation: float64 numpy, explicit loops
over anchors, and a few numbers typed by hand.
"""

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import contrastive as C

ENERGIES = sorted(C.ENERGY_FNS)
LOSSES = sorted(C.CONTRASTIVE_LOSSES)


def test_registries_hold_the_requested_names_with_formulas():
    assert {"l2", "l2_no_sqrt", "l1", "dot", "cos"} <= set(C.ENERGY_FNS)
    assert {
        "infonce",
        "infonce_backward",
        "symmetric_infonce",
        "binary",
        "flatnce",
        "fb",
        "dpo",
        "ipo",
        "sppo",
    } <= set(C.CONTRASTIVE_LOSSES)
    for entry in [*C.ENERGY_FNS.values(), *C.CONTRASTIVE_LOSSES.values()]:
        assert isinstance(entry.formula, str) and entry.formula
    for entry in C.CONTRASTIVE_LOSSES.values():
        assert entry.anchor in ("row", "column", "both")


# =============================================================================
# Energies
# =============================================================================


def naive_energy(name, phi, psi):
    """[B, B] by broadcasting in float64."""
    a, b = np.asarray(phi, np.float64), np.asarray(psi, np.float64)
    diff = a[:, None, :] - b[None, :, :]
    if name == "l2":
        return -np.sqrt((diff**2).sum(-1))
    if name == "l2_no_sqrt":
        return -(diff**2).sum(-1)
    if name == "l1":
        return -np.abs(diff).sum(-1)
    if name == "dot":
        return a @ b.T
    if name == "cos":
        return (a @ b.T) / np.linalg.norm(a, axis=1)[:, None] / np.linalg.norm(b, axis=1)[None, :]
    raise KeyError(name)


HAND_PHI = jnp.array([[0.0, 0.0], [3.0, 4.0]])
HAND_PSI = jnp.array([[0.0, 0.0], [0.0, 4.0]])
HAND_ENERGIES = {
    "l2": -np.array([[0.0, 4.0], [5.0, 3.0]]),
    "l2_no_sqrt": -np.array([[0.0, 16.0], [25.0, 9.0]]),
    "l1": -np.array([[0.0, 4.0], [7.0, 3.0]]),
    "dot": np.array([[0.0, 0.0], [0.0, 16.0]]),
}


@pytest.mark.parametrize("name", sorted(HAND_ENERGIES))
def test_energy_on_hand_values(name):
    energy = C.ENERGY_FNS[name]
    np.testing.assert_allclose(energy.pairwise(HAND_PHI, HAND_PSI), HAND_ENERGIES[name], atol=1e-6)
    np.testing.assert_allclose(energy.matched(HAND_PHI, HAND_PSI), np.diag(HAND_ENERGIES[name]), atol=1e-6)


def test_cos_on_hand_values():
    phi = jnp.array([[1.0, 0.0], [3.0, 4.0]])
    psi = jnp.array([[0.0, 2.0], [6.0, 8.0]])
    want = np.array([[0.0, 0.6], [0.8, 1.0]])
    np.testing.assert_allclose(C.ENERGY_FNS["cos"].pairwise(phi, psi), want, atol=1e-6)
    np.testing.assert_allclose(C.ENERGY_FNS["cos"].matched(phi, psi), [0.0, 1.0], atol=1e-6)
    np.testing.assert_allclose(C.cos_pairwise(phi, psi, temperature=0.5), want / 0.5, atol=1e-6)


@pytest.mark.parametrize("name", ENERGIES)
def test_energy_matches_its_broadcast_form_and_its_matched_form(name):
    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    phi = 2.0 * jax.random.normal(k1, (40, 16)) + 1.0
    psi = 2.0 * jax.random.normal(k2, (40, 16)) + 1.0
    psi = psi.at[:5].set(phi[:5] + 1e-2)  # near-coincident positives
    energy = C.ENERGY_FNS[name]
    want = naive_energy(name, phi, psi)
    scale = np.abs(want).max()
    np.testing.assert_allclose(energy.pairwise(phi, psi), want, rtol=1e-5, atol=1e-5 * scale)
    np.testing.assert_allclose(energy.matched(phi, psi), np.diag(want), rtol=1e-5, atol=1e-5 * scale)


class Today:
    """train.py's critic at commit 82a0545, pinned: the defaults must keep its numbers after
    train.py switches to contrastive.py and drops these functions."""

    @staticmethod
    def matched_energy(phi, psi):
        return -C.safe_sqrt(jnp.sum((phi - psi) ** 2, axis=-1))

    @staticmethod
    def l2_energy(phi, psi):
        cross = jnp.matmul(phi, psi.T, precision=jax.lax.Precision.HIGHEST)
        squared = jnp.sum(phi**2, axis=-1)[:, None] + jnp.sum(psi**2, axis=-1)[None, :] - 2.0 * cross
        energy = -C.safe_sqrt(jnp.maximum(squared, 0.0))
        return jnp.where(jnp.eye(phi.shape[0], dtype=bool), Today.matched_energy(phi, psi)[:, None], energy)

    @staticmethod
    def infonce_loss(logits, valid, logsumexp_penalty):
        lse = jax.nn.logsumexp(logits, axis=1)
        positive = jnp.diagonal(logits)
        loss = C.masked_mean(lse - positive + logsumexp_penalty * lse**2, valid)
        metrics = {
            "categorical_accuracy": C.masked_mean(
                jnp.argmax(logits, axis=1) == jnp.arange(logits.shape[0]), valid
            ),
            "logits_pos": C.masked_mean(positive, valid),
            "logits_neg": jnp.mean(logits),
            "logsumexp": C.masked_mean(lse, valid),
        }
        return loss, metrics


def todays(name):
    """Today's function: train.py's own while it still has it, else the pinned copy."""
    import train  # only in the tests: contrastive.py itself must not depend on train.py

    return [getattr(Today, name)] + ([getattr(train, name)] if hasattr(train, name) else [])


def test_l2_is_todays_train_l2_energy_exactly():
    k1, k2 = jax.random.split(jax.random.PRNGKey(4))
    phi = 4.0 * jax.random.normal(k1, (64, 32)) + 2.0
    psi = (4.0 * jax.random.normal(k2, (64, 32)) + 2.0).at[:8].set(phi[:8])
    for old_matched in todays("matched_energy"):
        np.testing.assert_array_equal(C.ENERGY_FNS["l2"].matched(phi, psi), old_matched(phi, psi))
    for old in todays("l2_energy"):
        np.testing.assert_array_equal(C.ENERGY_FNS["l2"].pairwise(phi, psi), old(phi, psi))
        np.testing.assert_array_equal(jax.jit(C.l2_pairwise)(phi, psi), jax.jit(old)(phi, psi))
        g_new = jax.grad(lambda p: jnp.sum(jnp.sin(C.l2_pairwise(p, psi))))(phi)
        g_old = jax.grad(lambda p: jnp.sum(jnp.sin(old(p, psi))))(phi)  # noqa: B023
        np.testing.assert_array_equal(g_new, g_old)


@pytest.mark.parametrize("name", ENERGIES)
def test_energy_gradients_are_finite_at_coincident_points(name):
    phi = jnp.array([[1.0, 2.0], [0.5, -1.0], [0.0, 0.0]])  # the last one is the zero vector
    energy = C.ENERGY_FNS[name]

    def total(phi, psi):
        return jnp.sum(energy.pairwise(phi, psi)) + jnp.sum(energy.matched(phi, psi))

    for grad in jax.grad(total, (0, 1))(phi, phi):  # every diagonal distance is exactly 0
        assert jnp.isfinite(grad).all()
    assert float(jax.grad(C.safe_sqrt)(0.0)) == 0.0


@pytest.mark.parametrize("batch,max_elements", [(37, 5 * 37 * 8), (37, 1), (16, 10**9)])
def test_chunked_l1_equals_naive_values_and_gradients(batch, max_elements):
    rows = C.l1_rows_per_chunk(batch, 8, max_elements)
    assert rows == {5 * 37 * 8: 5, 1: 1, 10**9: 16}[max_elements]  # 37 = 7 chunks of 5 + 2
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(5), 3)
    phi = jax.random.normal(k1, (batch, 8))
    psi = jax.random.normal(k2, (batch, 8))
    weights = jax.random.normal(k3, (batch, batch))

    def naive(phi, psi):
        return -jnp.sum(jnp.abs(phi[:, None, :] - psi[None, :, :]), axis=-1)

    chunked = lambda phi, psi: C.l1_pairwise(phi, psi, max_elements)
    np.testing.assert_allclose(jax.jit(chunked)(phi, psi), naive(phi, psi), rtol=1e-6, atol=1e-6)
    grads = jax.grad(lambda p, q: jnp.sum(weights * chunked(p, q)), (0, 1))(phi, psi)
    want = jax.grad(lambda p, q: jnp.sum(weights * naive(p, q)), (0, 1))(phi, psi)
    for got, ref in zip(grads, want):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_chunked_l1_never_holds_the_full_difference_tensor():
    batch, dim, max_elements = 512, 64, 1 << 18  # full tensor 2^24 floats, chunk at most 2^18
    phi = jnp.zeros((batch, dim))

    def step(phi, psi):
        return jax.grad(lambda p, q: jnp.sum(jnp.sin(C.l1_pairwise(p, q, max_elements))), (0, 1))(phi, psi)

    temp = jax.jit(step).lower(phi, phi).compile().memory_analysis().temp_size_in_bytes
    full = batch * batch * dim * 4
    assert temp < full / 8, (temp, full)


# =============================================================================
# Losses
# =============================================================================


def lse(values):
    values = np.asarray(values, np.float64)
    m = values.max()
    return m + math.log(np.exp(values - m).sum())


def naive_loss(name, logits, valid, pen):
    """Loops over anchors; float64. Returns the scalar loss."""
    L = np.asarray(logits, np.float64)
    valid = np.asarray(valid, bool)
    B = L.shape[0]
    softplus = lambda x: math.log1p(math.exp(-abs(x))) + max(x, 0.0)

    def over(anchors, term):
        terms = [term(k) for k in anchors if valid[k]]
        return sum(terms) / max(len(terms), 1)

    row = lambda i: L[i]
    col = lambda j: L[:, j]
    others = lambda k: [m for m in range(B) if m != k]
    if name == "infonce":
        return over(range(B), lambda i: lse(row(i)) - L[i, i] + pen * lse(row(i)) ** 2)
    if name == "infonce_backward":
        return over(range(B), lambda j: lse(col(j)) - L[j, j] + pen * lse(col(j)) ** 2)
    if name == "symmetric_infonce":
        return naive_loss("infonce", L, valid, pen) + naive_loss("infonce_backward", L, valid, pen)
    if name == "binary":
        return over(range(B), lambda i: (softplus(-L[i, i]) + sum(softplus(L[i, j]) for j in others(i))) / B)
    if name == "flatnce":
        return over(range(B), lambda i: lse([L[i, j] - L[i, i] for j in others(i)]) + pen * lse(row(i)) ** 2)
    if name == "flatnce_backward":
        return over(range(B), lambda j: lse([L[i, j] - L[j, j] for i in others(j)]) + pen * lse(col(j)) ** 2)
    if name == "fb":
        return over(range(B), lambda i: -L[i, i] + 0.5 * sum(L[i, j] ** 2 for j in others(i)) / (B - 1))
    if name == "dpo":
        return over(
            range(B),
            lambda i: (
                sum(softplus(-(L[i, i] - L[i, j])) for j in others(i)) / (B - 1) + pen * lse(row(i)) ** 2
            ),
        )
    if name == "ipo":
        return over(
            range(B),
            lambda i: sum((L[i, i] - L[i, j] - 1) ** 2 for j in others(i)) / (B - 1) + pen * lse(row(i)) ** 2,
        )
    if name == "sppo":
        return over(range(B), lambda i: (L[i, i] - 1) ** 2 + sum((L[i, j] + 1) ** 2 for j in others(i)) / B)
    raise KeyError(name)


def test_every_registered_loss_has_a_naive_form():
    for name in LOSSES:
        naive_loss(name, np.eye(3), np.ones(3, bool), 0.1)


# Numbers typed by hand (penalty 0).
HAND_LOSSES = [
    ("infonce", [[0.0, 0.0], [0.0, 0.0]], math.log(2)),
    (
        "infonce_backward",
        [[1.0, 2.0], [3.0, 4.0]],
        (math.log(math.e + math.e**3) - 1 + math.log(math.e**2 + math.e**4) - 4) / 2,
    ),
    ("symmetric_infonce", [[0.0, 0.0], [0.0, 0.0]], 2 * math.log(2)),
    ("binary", [[0.0, 0.0], [0.0, 0.0]], math.log(2)),
    ("flatnce", [[1.0, 0.0], [0.0, 1.0]], -1.0),
    ("fb", [[1.0, 2.0], [3.0, 4.0]], ((-1 + 0.5 * 4) + (-4 + 0.5 * 9)) / 2),
    ("dpo", [[1.0, 0.0], [0.0, 1.0]], math.log(1 + math.exp(-1))),
    ("ipo", [[1.0, 0.0], [0.0, 1.0]], 0.0),
    ("sppo", [[0.0, 0.0], [0.0, 0.0]], 1.5),  # per row (2 * 1 + 1) / 2
]


@pytest.mark.parametrize("name,logits,want", HAND_LOSSES)
def test_loss_on_hand_typed_numbers(name, logits, want):
    loss, _ = C.CONTRASTIVE_LOSSES[name].fn(jnp.array(logits), jnp.ones(2, bool), 0.0)
    assert float(loss) == pytest.approx(want, rel=1e-6, abs=1e-6)
    assert float(loss) == pytest.approx(
        naive_loss(name, logits, np.ones(2, bool), 0.0), rel=1e-6, abs=1e-6
    )


@pytest.mark.parametrize("name", LOSSES)
@pytest.mark.parametrize("pen", [0.0, 0.1])
def test_loss_matches_its_naive_form_with_masked_rows(name, pen):
    logits = 2.0 * jax.random.normal(jax.random.PRNGKey(0), (6, 6))
    for valid in ([True] * 6, [True, False, True, True, False, True], [False] * 6):
        valid = np.array(valid)
        loss, metrics = C.CONTRASTIVE_LOSSES[name].fn(logits, jnp.asarray(valid), pen)
        applied = pen if C.CONTRASTIVE_LOSSES[name].penalty_applies else 0.0
        want = naive_loss(name, logits, valid, applied)
        assert float(loss) == pytest.approx(want, rel=1e-5, abs=1e-5)
        assert set(metrics) == {"categorical_accuracy", "logits_pos", "logits_neg", "logsumexp"}


@pytest.mark.parametrize("name", LOSSES)
def test_penalty_is_used_exactly_where_documented(name):
    logits = jax.random.normal(jax.random.PRNGKey(1), (5, 5)) + 3.0
    valid = jnp.ones(5, bool)
    fn = C.CONTRASTIVE_LOSSES[name].fn
    changed = float(fn(logits, valid, 0.5)[0]) != float(fn(logits, valid, 0.0)[0])
    assert changed == C.CONTRASTIVE_LOSSES[name].penalty_applies


def test_metrics_on_hand_values_and_logits_neg_excludes_positives():
    logits = jnp.array([[5.0, 1.0, 2.0], [0.0, -1.0, 3.0], [4.0, 6.0, 7.0]])
    valid = jnp.array([True, True, False])
    _, m = C.CONTRASTIVE_LOSSES["infonce"].fn(logits, valid, 0.0)
    assert float(m["categorical_accuracy"]) == pytest.approx(0.5)  # row 0 right, row 1 wrong
    assert float(m["logits_pos"]) == pytest.approx((5.0 - 1.0) / 2)
    assert float(m["logits_neg"]) == pytest.approx((1.0 + 2.0 + 0.0 + 3.0) / 4)
    want_lse = (lse([5.0, 1.0, 2.0]) + lse([0.0, -1.0, 3.0])) / 2
    assert float(m["logsumexp"]) == pytest.approx(want_lse, rel=1e-6)


def test_infonce_is_todays_train_infonce_loss_exactly():
    logits = 3.0 * jax.random.normal(jax.random.PRNGKey(2), (32, 32))
    valid = jax.random.bernoulli(jax.random.PRNGKey(3), 0.8, (32,))
    for today in todays("infonce_loss"):
        for run in (lambda f: f, jax.jit):
            new_loss, new = run(C.infonce_loss)(logits, valid, 0.1)
            old_loss, old = run(today)(logits, valid, 0.1)
            np.testing.assert_array_equal(new_loss, old_loss)
            for key in ("categorical_accuracy", "logits_pos", "logsumexp"):
                np.testing.assert_array_equal(new[key], old[key])
        g_new = jax.grad(lambda l: C.infonce_loss(l, valid, 0.1)[0])(logits)
        g_old = jax.grad(lambda l: today(l, valid, 0.1)[0])(logits)  # noqa: B023
        np.testing.assert_array_equal(g_new, g_old)
    # The one requested change: today's logits_neg averages the positives in too.
    off = ~np.eye(32, dtype=bool) & np.asarray(valid)[:, None]
    # float32 sums of ~800 terms against a float64 mean: a few float32 ulps apart.
    np.testing.assert_allclose(new["logits_neg"], np.asarray(logits, np.float64)[off].mean(), rtol=1e-5)
    assert float(new["logits_neg"]) != pytest.approx(float(jnp.mean(logits)), rel=1e-3)


def test_symmetric_is_forward_plus_backward():
    logits = jax.random.normal(jax.random.PRNGKey(4), (7, 7))
    valid = jnp.array([True, True, False, True, True, True, False])
    total = C.symmetric_infonce_loss(logits, valid, 0.2)[0]
    parts = C.infonce_loss(logits, valid, 0.2)[0] + C.infonce_backward_loss(logits, valid, 0.2)[0]
    np.testing.assert_allclose(total, parts, rtol=1e-6)


def test_flatnce_gradient_is_the_softmax_over_negatives():
    # d/d l_ij of logsumexp_{j != i}(l_ij - l_ii): softmax over the negatives for j != i, -1 at j = i.
    logits = jnp.array([[1.0, 0.5, -2.0], [0.0, 2.0, 1.0], [3.0, -1.0, 0.5]])
    L = np.asarray(logits, np.float64)
    want = np.zeros((3, 3))
    for i in range(3):
        negatives = [j for j in range(3) if j != i]
        weights = np.exp(L[i, negatives] - L[i, negatives].max())
        want[i, negatives] = weights / weights.sum()
        want[i, i] = -1.0
    want /= 3  # mean over rows
    grad = jax.grad(lambda l: C.flatnce_loss(l, jnp.ones(3, bool), 0.0)[0])(logits)
    np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-7)

    # FlatNCE's surrogate exp(c - stop_gradient(c)) has this same gradient.
    def surrogate(l):
        c = jax.nn.logsumexp(
            jnp.where(jnp.eye(3, dtype=bool), -jnp.inf, l - jnp.diagonal(l)[:, None]), axis=1
        )
        return jnp.mean(jnp.exp(c - jax.lax.stop_gradient(c)))

    np.testing.assert_allclose(grad, jax.grad(surrogate)(logits), rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("name", LOSSES)
def test_aligned_logits_score_better_than_misaligned(name):
    good = 2.0 * jnp.eye(4) - 1.0
    bad = jnp.roll(good, 1, axis=1)
    valid = jnp.ones(4, bool)
    fn = C.CONTRASTIVE_LOSSES[name].fn
    assert float(fn(good, valid, 0.1)[0]) < float(fn(bad, valid, 0.1)[0])


@pytest.mark.parametrize("name", LOSSES)
def test_invalid_anchors_do_not_change_the_loss(name):
    logits = jax.random.normal(jax.random.PRNGKey(6), (6, 6))
    valid = jnp.array([True, False, True, True, False, True])
    noise = 5.0 * jax.random.normal(jax.random.PRNGKey(7), (6, 6))
    entry = C.CONTRASTIVE_LOSSES[name]
    base = float(entry.fn(logits, valid, 0.1)[0])
    invalid_rows, invalid_cols = ~valid[:, None], ~valid[None, :]
    # An invalid pair's diagonal entry is never a positive (nor a negative) for any loss.
    diag = jnp.eye(6, dtype=bool) & invalid_rows
    assert float(entry.fn(jnp.where(diag, logits + noise, logits), valid, 0.1)[0]) == pytest.approx(
        base, rel=1e-6
    )
    mask = {"row": invalid_rows, "column": invalid_cols, "both": diag}[entry.anchor]
    assert float(entry.fn(jnp.where(mask, logits + noise, logits), valid, 0.1)[0]) == pytest.approx(
        base, rel=1e-6
    )
    # ...while the same change on a valid anchor does move the loss.
    valid_mask = {
        "row": valid[:, None],
        "column": valid[None, :],
        "both": jnp.eye(6, dtype=bool) & valid[:, None],
    }
    moved = float(entry.fn(jnp.where(valid_mask[entry.anchor], logits + noise, logits), valid, 0.1)[0])
    assert moved != pytest.approx(base, rel=1e-4)


@pytest.mark.parametrize("energy,loss", list(itertools.product(ENERGIES, LOSSES)))
def test_every_pair_compiles_with_finite_loss_and_gradients(energy, loss):
    k1, k2 = jax.random.split(jax.random.PRNGKey(8))
    phi = jax.random.normal(k1, (16, 8))
    psi = jax.random.normal(k2, (16, 8)).at[0].set(phi[0])  # one coincident positive
    valid = jnp.ones(16, bool).at[3].set(False)
    energy_fn, loss_fn = C.ENERGY_FNS[energy], C.CONTRASTIVE_LOSSES[loss].fn

    @jax.jit
    def run(phi, psi):
        def total(phi, psi):
            value, metrics = loss_fn(energy_fn.pairwise(phi, psi), valid, 0.1)
            return value - jnp.mean(energy_fn.matched(phi, psi)), metrics

        return jax.value_and_grad(total, (0, 1), has_aux=True)(phi, psi)

    (value, metrics), (g_phi, g_psi) = run(phi, psi)
    assert jnp.isfinite(value)
    assert all(jnp.isfinite(m) for m in metrics.values())
    assert jnp.isfinite(g_phi).all() and jnp.isfinite(g_psi).all()
    assert float(jnp.abs(g_phi).sum()) > 0 and float(jnp.abs(g_psi).sum()) > 0

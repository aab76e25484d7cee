"""Losses on small hand-computed inputs."""

from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import contrastive
import train


def test_l2_energy_is_negative_pairwise_distance():
    phi = jnp.array([[0.0, 0.0], [3.0, 4.0]])
    psi = jnp.array([[0.0, 0.0], [0.0, 4.0]])
    np.testing.assert_allclose(contrastive.l2_pairwise(phi, psi), -np.array([[0.0, 4.0], [5.0, 3.0]]), atol=1e-6)


def test_l2_energy_matches_the_pairwise_differences_on_random_batches():
    k1, k2 = jax.random.split(jax.random.PRNGKey(3))
    phi = 4.0 * jax.random.normal(k1, (96, 64)) + 2.0  # an offset makes the cancellation harder
    psi = 4.0 * jax.random.normal(k2, (96, 64)) + 2.0
    psi = psi.at[:8].set(phi[:8] + 1e-2)  # some near-coincident pairs on the diagonal
    a, b = np.asarray(phi, np.float64), np.asarray(psi, np.float64)
    want = -np.linalg.norm(a[:, None, :] - b[None, :, :], axis=-1)
    np.testing.assert_allclose(contrastive.l2_pairwise(phi, psi), want, rtol=1e-5, atol=1e-4)


def test_sqrt_gradient_is_finite_at_zero_distance():
    phi = jnp.array([[1.0, 2.0], [0.5, -1.0]])

    def loss(phi):
        return jnp.sum(contrastive.l2_pairwise(phi, phi))  # diagonal distances are exactly 0

    grad = jax.grad(loss)(phi)
    assert jnp.isfinite(grad).all()
    np.testing.assert_allclose(contrastive.safe_sqrt(jnp.array([0.0, 4.0])), [0.0, 2.0])
    assert float(jax.grad(contrastive.safe_sqrt)(0.0)) == 0.0


INFONCE = contrastive.CONTRASTIVE_LOSSES["infonce"]


def reference_infonce(logits, valid, coeff):
    logits = np.asarray(logits, np.float64)
    lse = np.log(np.exp(logits).sum(1))
    per_row = -(np.diag(logits) - lse) + coeff * lse**2
    return per_row[valid].mean()


def test_infonce_with_logsumexp_penalty_on_hand_values():
    logits = jnp.array([[0.0, -1.0, -3.0], [-2.0, -0.5, -1.0], [-4.0, -2.0, -1.5]])
    # Row 0: lse = log(1 + e^-1 + e^-3); loss = lse - 0 + 0.1 lse^2, etc.
    lse0 = np.log(1 + np.exp(-1) + np.exp(-3))
    valid = jnp.array([True, True, True])
    loss, metrics = contrastive.infonce_loss(logits, valid, 0.1)
    np.testing.assert_allclose(loss, reference_infonce(logits, [True] * 3, 0.1), rtol=1e-6)
    np.testing.assert_allclose(
        metrics["logsumexp"], np.mean(np.log(np.exp(np.asarray(logits)).sum(1))), rtol=1e-6
    )
    row0, _ = contrastive.infonce_loss(logits, jnp.array([True, False, False]), 0.1)
    np.testing.assert_allclose(row0, lse0 + 0.1 * lse0**2, rtol=1e-6)
    # Accuracy: rows 0 and 2 put their maximum on the diagonal, row 1 too (-0.5).
    assert float(metrics["categorical_accuracy"]) == pytest.approx(1.0)


def test_infonce_without_penalty_and_masked_rows():
    logits = jax.random.normal(jax.random.PRNGKey(0), (6, 6))
    valid = jnp.array([True, False, True, True, False, True])
    loss, metrics = contrastive.infonce_loss(logits, valid, 0.0)
    np.testing.assert_allclose(loss, reference_infonce(logits, np.asarray(valid), 0.0), rtol=1e-5)
    expected_acc = np.mean(
        np.argmax(np.asarray(logits), 1)[np.asarray(valid)] == np.arange(6)[np.asarray(valid)]
    )
    assert float(metrics["categorical_accuracy"]) == pytest.approx(expected_acc)


def test_infonce_prefers_aligned_representations():
    good = jnp.eye(4) * 3.0
    bad = jnp.roll(good, 1, axis=0)
    valid = jnp.ones(4, bool)
    loss_good, _ = contrastive.infonce_loss(contrastive.l2_pairwise(good, good), valid, 0.1)
    loss_bad, _ = contrastive.infonce_loss(contrastive.l2_pairwise(good, bad), valid, 0.1)
    assert float(loss_good) < float(loss_bad)


def test_tanh_gaussian_log_prob_matches_change_of_variables():
    mean = jnp.array([[0.3, -1.0], [2.0, 0.0]])
    log_std = jnp.array([[-0.5, 0.2], [0.0, -2.0]])
    action, log_prob = train.tanh_gaussian_sample(jax.random.PRNGKey(0), mean, log_std)
    u = np.arctanh(np.asarray(action, np.float64))
    want = (
        stats.norm.logpdf(u, np.asarray(mean), np.exp(np.asarray(log_std))) - np.log(1 - np.tanh(u) ** 2)
    ).sum(-1)
    np.testing.assert_allclose(log_prob, want, rtol=1e-3, atol=1e-3)
    assert (np.abs(np.asarray(action)) < 1).all()


def test_tanh_gaussian_density_integrates_to_one():
    # Integrate pi(a) over a in (-1, 1) for a 1-D policy: the tanh correction must be right.
    a = np.linspace(-1 + 1e-6, 1 - 1e-6, 200_001)
    u = jnp.arctanh(jnp.asarray(a))[:, None]
    log_p = train.tanh_gaussian_log_prob(u, jnp.array([[0.4]]), jnp.array([[-0.3]]))
    assert np.trapezoid(np.exp(np.asarray(log_p, np.float64)), a) == pytest.approx(1.0, abs=2e-3)


def test_log_det_stays_finite_for_saturated_actions():
    u = jnp.array([[40.0, -40.0]])
    log_p = train.tanh_gaussian_log_prob(u, jnp.zeros((1, 2)), jnp.zeros((1, 2)))
    assert jnp.isfinite(log_p).all()


def test_alpha_loss_gradient_sign():
    valid = jnp.ones(3, bool)
    target = -1.0
    high_entropy = jnp.array([-3.0, -3.0, -3.0])  # log pi = -3: entropy 3 > target -1
    low_entropy = jnp.array([5.0, 5.0, 5.0])  # entropy -5 < target -1
    g_high = jax.grad(train.alpha_loss)(0.0, high_entropy, target, valid)
    g_low = jax.grad(train.alpha_loss)(0.0, low_entropy, target, valid)
    assert g_high > 0 > g_low  # gradient descent lowers alpha when entropy exceeds the target
    np.testing.assert_allclose(train.alpha_loss(0.0, high_entropy, target, valid), 1.0 * (3.0 + 1.0))


def small_nets(action_dim=2):
    actor = train.Actor(train.Torso(16, 4, 4, nn.swish), action_dim)
    enc = lambda: train.Encoder(train.Torso(16, 4, 4, nn.swish), repr_dim=8)  # noqa: E731
    return train.Networks(actor, enc(), enc(), contrastive.ENERGY_FNS["l2"], "exact")


def test_actor_loss_is_alpha_log_prob_minus_critic():
    nets = small_nets()
    state, goal = (
        jax.random.normal(jax.random.PRNGKey(0), (5, 4)),
        jax.random.normal(jax.random.PRNGKey(1), (5, 3)),
    )
    actor_params = nets.actor.init(jax.random.PRNGKey(2), jnp.zeros((1, 7)))
    critic_params = {
        "sa_encoder": nets.sa_encoder.init(jax.random.PRNGKey(3), jnp.zeros((1, 6))),
        "g_encoder": nets.g_encoder.init(jax.random.PRNGKey(4), jnp.zeros((1, 3))),
    }
    key, valid = jax.random.PRNGKey(5), jnp.ones(5, bool)

    @jax.jit
    def compute(actor_params, critic_params):
        psi = nets.g_encoder.apply(critic_params["g_encoder"], goal)
        loss, _ = train.actor_loss(actor_params, critic_params, 0.3, nets, state, goal, psi, valid, key)
        mean, log_std = nets.actor.apply(actor_params, jnp.concatenate([state, goal], -1))
        action, log_prob = train.tanh_gaussian_sample(key, mean, log_std)
        q = train.critic_value(critic_params, nets, state, action, goal)
        phi = nets.sa_encoder.apply(critic_params["sa_encoder"], jnp.concatenate([state, action], -1))
        grads = jax.grad(
            lambda p: train.actor_loss(p, critic_params, 0.3, nets, state, goal, psi, valid, key)[0]
        )(actor_params)
        # The critic loss hands back the psi(g) the actor loss reuses.
        _, (_, critic_psi) = train.critic_loss(critic_params, nets, INFONCE, state, action, goal, valid, 0.1)
        return loss, log_prob, q, contrastive.l2_pairwise(phi, psi), grads, critic_psi - psi

    loss, log_prob, q, energy, grads, psi_gap = compute(actor_params, critic_params)
    np.testing.assert_allclose(loss, jnp.mean(0.3 * log_prob - q), rtol=1e-5)
    # The critic's value of a matched pair equals the diagonal of the pairwise energy.
    np.testing.assert_allclose(q, jnp.diagonal(energy), rtol=1e-5)
    assert all(jnp.isfinite(g).all() for g in jax.tree.leaves(grads))
    np.testing.assert_array_equal(psi_gap, 0.0)


def test_best_of_k_policy_picks_highest_critic_value():
    nets = small_nets()
    obs_dim = 4
    obs = jax.random.normal(jax.random.PRNGKey(0), (6, 7))
    actor_params = nets.actor.init(jax.random.PRNGKey(2), obs)
    critic_params = {
        "sa_encoder": nets.sa_encoder.init(jax.random.PRNGKey(3), jnp.zeros((1, 6))),
        "g_encoder": nets.g_encoder.init(jax.random.PRNGKey(4), jnp.zeros((1, 3))),
    }
    key = jax.random.PRNGKey(7)

    @jax.jit
    def compute(actor_params, critic_params):
        best = train.make_policy(nets, obs_dim, 8)(actor_params, critic_params, obs, key)
        mean, log_std = nets.actor.apply(actor_params, obs)
        candidates = jax.vmap(lambda k: train.tanh_gaussian_sample(k, mean, log_std)[0])(
            jax.random.split(key, 8)
        )
        value = lambda a: train.critic_value(critic_params, nets, obs[:, :4], a, obs[:, 4:])  # noqa: E731
        deterministic = train.make_policy(nets, obs_dim, 0)(actor_params, critic_params, obs, key)
        return value(best), jax.vmap(value)(candidates), deterministic, jnp.tanh(mean)

    chosen, scores, deterministic, tanh_mean = compute(actor_params, critic_params)
    np.testing.assert_allclose(chosen, scores.max(0), rtol=1e-5)
    assert (scores.max(0) > scores.min(0)).all()  # the choice mattered
    np.testing.assert_allclose(deterministic, tanh_mean)


def test_authors_log_prob_form_matches_its_formula_and_stops_at_saturation():
    """The reference code's tanh correction, log(1 - tanh(u)^2 + 1e-6): equal to the exact one for
    small |u|, flat once tanh(u)^2 rounds to 1, where the exact one keeps growing."""
    u = jnp.array([[0.3], [3.0], [12.0]])
    mean, log_std = jnp.zeros((3, 1)), jnp.zeros((3, 1))
    gaussian = -0.5 * np.asarray(u, np.float64) ** 2 - 0.5 * np.log(2 * np.pi)
    tanh2 = np.tanh(np.asarray(u, np.float64)) ** 2
    # The authors' form takes 1 - tanh(u)^2 of float32 tanh, which near saturation is a few ulps
    # of 1 or exactly 1, as XLA's tanh approximation (and its optimisation level) has it.
    tanh2_f32 = np.asarray(jnp.tanh(u), np.float64) ** 2
    authors = train.tanh_gaussian_log_prob(u, mean, log_std, "authors")
    exact = train.tanh_gaussian_log_prob(u, mean, log_std, "exact")
    np.testing.assert_allclose(authors, (gaussian - np.log(1 - tanh2_f32 + 1e-6))[:, 0], rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(exact, (gaussian - np.log(1 - tanh2))[:, 0], rtol=1e-5)
    assert abs(float(authors[0] - exact[0])) < 1e-4  # no difference where the policy is not saturated
    # At u = 12 the exact correction is 2 (12 - log 2) = 22.6 nats; the authors' stops at
    # -log(1e-6 + 1 - tanh(u)^2) <= -log(1e-6) = 13.8, whatever float32 tanh(12) rounds to.
    np.testing.assert_allclose(float(exact[2] - gaussian[2, 0]), 22.61, atol=0.01)
    assert 13.0 < float(authors[2] - gaussian[2, 0]) <= 13.82


@pytest.fixture(scope="module")
def prefilled():
    from tests.test_train import TINY

    trainer = train.build(train.Config(**TINY))
    ts, _, buf = trainer.prefill(*trainer.init(jax.random.PRNGKey(0)))
    return ts, buf


def test_every_energy_and_loss_pair_runs_a_training_sgd_step(prefilled):
    """All 50 pairs through train.sgd_step (critic, actor and alpha updates) on one real replay batch.

    Fifty programs would take minutes to compile on CI's CPU, so one program holds them all: the
    energy and the loss are picked inside it by lax.switch on a traced index. Two pairs built the
    way train.build builds them (their own Setup, their own jit) must give the same numbers."""
    import buffer as replay
    from tests.test_train import TINY

    ts, buf = prefilled
    energies, losses = list(contrastive.ENERGY_FNS.values()), list(contrastive.CONTRASTIVE_LOSSES.values())
    s0 = train.make_setup(train.Config(**TINY))[0]
    penalty = s0.config.logsumexp_penalty_coeff
    idx = replay.sample_indices(buf, jax.random.PRNGKey(3), window=s0.derived.window, gamma=s0.config.gamma,
                                num_batches=1, batch_size=s0.config.batch_size)  # fmt: skip
    idx = jax.tree.map(lambda x: x[0], idx)
    key = jax.random.PRNGKey(4)

    def pick(i, fns):
        return lambda *args: jax.lax.switch(i, fns, *args)

    @jax.jit
    def any_pair_step(ts, e, c):
        pairwise, matched = pick(e, [f.pairwise for f in energies]), pick(e, [f.matched for f in energies])
        loss_fns = [lambda logits, valid, fn=f.fn: fn(logits, valid, penalty) for f in losses]
        loss_fn = pick(c, loss_fns)
        loss = contrastive.ContrastiveLoss(lambda logits, valid, _: loss_fn(logits, valid), "", True, "")
        energy = contrastive.Energy(pairwise, matched, "")
        return train.sgd_step(s0._replace(nets=s0.nets._replace(energy=energy), loss=loss), ts, buf, idx, key)

    @jax.jit
    def own_losses(critic_params):
        state, action, goal = replay.gather(buf, idx, s0.derived.goal_start, s0.derived.goal_end)
        phi, psi = train.encode(critic_params, s0.nets, state, action, goal)
        return [[c.fn(e.pairwise(phi, psi), idx.valid, penalty)[0] for c in losses] for e in energies]

    expected = jax.device_get(own_losses(ts.critic_params))
    steps = {}
    for e, energy in enumerate(contrastive.ENERGY_FNS):
        for c, loss in enumerate(contrastive.CONTRASTIVE_LOSSES):
            new_ts, metrics = steps[energy, loss] = jax.device_get(any_pair_step(ts, e, c))
            assert all(np.isfinite(v) for v in metrics.values()), (energy, loss, metrics)
            for net in ("critic_params", "actor_params"):
                change = jax.tree.map(np.subtract, getattr(new_ts, net), jax.device_get(getattr(ts, net)))
                assert optax.tree.norm(change) > 0, (energy, loss, net)
            np.testing.assert_allclose(metrics["critic_loss"], expected[e][c], rtol=1e-5, atol=1e-6)
    assert len(steps) == 50
    # Different pairs give different critic losses on the same batch: the choice reaches the step.
    assert len({round(float(m["critic_loss"]), 4) for _, m in steps.values()}) > 40

    for energy, loss in [("cos", "binary"), ("l1", "sppo")]:
        s = train.make_setup(train.Config(**TINY, energy_fn=energy, contrastive_loss_fn=loss))[0]
        new_ts, metrics = jax.device_get(jax.jit(partial(train.sgd_step, s))(ts, buf, idx, key))
        switched_ts, switched = steps[energy, loss]
        for name, value in metrics.items():
            np.testing.assert_allclose(switched[name], value, rtol=1e-5, atol=1e-6, err_msg=name)
        jax.tree.map(partial(np.testing.assert_allclose, rtol=1e-5, atol=1e-6), switched_ts, new_ts)

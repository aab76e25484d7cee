"""Our code against the authors' (wang-kevin3290/scaling-crl), number by number.

The fixtures in tests/data/reference/ were computed by the authors' own code in its own install
(scripts/reference/make_fixtures.py; commit, versions and command in meta.json). Inputs are not
stored but regenerated bit-exactly by scripts/reference/inputs.py (integer hashing), so both sides
see the same parameters and batches; the reparameterisation noise comes from the same PRNG keys.

Parameter-tree mapping (authors' flat flax names -> ours), n = depth // 4 residual blocks:
    Dense_0, LayerNorm_0                  -> torso/DenseNormAct_0/{Dense_0, LayerNorm_0}
    Dense_{1+4b+l}, LayerNorm_{1+4b+l}    -> torso/blocks/DenseNormAct_l/{Dense_0, LayerNorm_0}[b]
                                             (l = 0..3, b = 0..n-1: our blocks are stacked on axis 0)
    Dense_{4n+1}                          -> Dense_0   (encoder output; actor mean head)
    Dense_{4n+2}                          -> Dense_1   (actor log-std head)
Tolerances are float32 ones: both sides run the same operations in a different order (our l2
energy takes off-diagonal distances from |a|^2 + |b|^2 - 2ab, XLA fuses differently in jax 0.4.23
and ours), measured at ~1e-6 relative. Tests allow 2e-5 (outputs, losses, log-probs) and 1e-5 of
the largest entry per gradient leaf; after 3 Adam steps 1e-3 of each leaf's displacement (Adam
divides by |gradient|, which amplifies rounding where a gradient is near 0; measured 1.8e-4).
docs/parity.md has the figures (scripts/reference/figures.py prints them).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import buffer as replay
import contrastive
import train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "reference"
sys.path.insert(0, str(ROOT / "scripts" / "reference"))
import inputs  # noqa: E402

META = json.loads((DATA / "meta.json").read_text())
DIMS = META["dims"]
OBS, G0, G1, ACT = DIMS["obs_dim"], DIMS["goal_start"], DIMS["goal_end"], DIMS["action_dim"]


def load(name: str) -> dict:
    with np.load(DATA / f"{name}.npz") as f:
        return {k: f[k] for k in f.files}


# ----- parameter mapping ------------------------------------------------------------------------


def to_ours(authors: dict, depth: int, heads: int) -> dict:
    """Authors' {'params/<Module_i>/<leaf>': array} -> our nested tree (mapping in the docstring)."""
    n = depth // 4

    def layer(i):
        return {"Dense_0": {k: authors[f"params/Dense_{i}/{k}"] for k in ("kernel", "bias")},
                "LayerNorm_0": {k: authors[f"params/LayerNorm_{i}/{k}"] for k in ("scale", "bias")}}

    blocks = {}
    for l in range(4):
        per_block = [layer(1 + 4 * b + l) for b in range(n)]
        blocks[f"DenseNormAct_{l}"] = jax.tree.map(lambda *xs: np.stack(xs), *per_block)
    tree = {"torso": {"DenseNormAct_0": layer(0), "blocks": blocks}}
    for h in range(heads):
        tree[f"Dense_{h}"] = {k: authors[f"params/Dense_{4 * n + 1 + h}/{k}"] for k in ("kernel", "bias")}
    return {"params": tree}


def to_authors(ours: dict, depth: int, heads: int) -> dict:
    """The inverse mapping, for gradients and updated parameters."""
    n, p, out = depth // 4, ours["params"], {}

    def put(i, node, b=None):
        pick = (lambda x: x) if b is None else (lambda x: x[b])
        for k in ("kernel", "bias"):
            out[f"params/Dense_{i}/{k}"] = np.asarray(pick(node["Dense_0"][k]))
        for k in ("scale", "bias"):
            out[f"params/LayerNorm_{i}/{k}"] = np.asarray(pick(node["LayerNorm_0"][k]))

    put(0, p["torso"]["DenseNormAct_0"])
    for l in range(4):
        for b in range(n):
            put(1 + 4 * b + l, p["torso"]["blocks"][f"DenseNormAct_{l}"], b)
    for h in range(heads):
        for k in ("kernel", "bias"):
            out[f"params/Dense_{4 * n + 1 + h}/{k}"] = np.asarray(p[f"Dense_{h}"][k])
    return out


def networks(width: int, depth: int, relu: bool = False):
    act = nn.relu if relu else nn.swish
    torso = train.Torso(width, depth, 4, act)
    return train.Networks(
        actor=train.Actor(torso, ACT), sa_encoder=train.Encoder(torso, 64), g_encoder=train.Encoder(torso, 64),
        energy=contrastive.ENERGY_FNS["l2"], log_prob_correction="authors",
    )


def params(spec: dict, depth: int, calm: bool = False):
    """(actor, critic) parameters: the authors' values (inputs.py) in our tree; `calm` gives the
    actor of the loss fixtures (inputs.calm_actor)."""
    flat = {net: inputs.params_from_spec(net, s) for net, s in spec.items()}
    if calm:
        flat["actor"] = inputs.calm_actor(flat["actor"], depth)
    actor = to_ours(flat["actor"], depth, heads=2)
    critic = {k: to_ours(flat[k], depth, heads=1) for k in ("sa_encoder", "g_encoder")}
    return actor, critic, flat


def batch(tag: str, n: int):
    state = inputs.uniform(f"{tag}/state", (n, OBS), -2.0, 2.0)
    action = inputs.uniform(f"{tag}/action", (n, ACT), -0.99, 0.99)
    future = inputs.uniform(f"{tag}/future_state", (n, OBS), -2.0, 2.0)
    return state, action, future[:, G0:G1], future


def rel_err(ours, ref) -> float:
    """max |ours - ref| / max |ref|: a scale-free float32 error."""
    ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
    return float(np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-30))


def test_fixtures_name_the_authors_commit_and_the_mapping_covers_every_leaf():
    assert META["authors_commit"] == "85160750739b8759d9213a879a4f482daf3c7b9f"
    assert META["jax"] == "0.4.23" and META["brax"] == "0.10.1"
    for name, (width, depth, relu) in META["network_configs"].items():
        nets = networks(width, depth, bool(relu))
        actor, critic, flat = params(META["param_specs"][f"networks/{name}"], depth)
        k = jax.random.PRNGKey(0)
        init = {  # shapes only (eval_shape: nothing is compiled or run)
            "actor": jax.eval_shape(nets.actor.init, k, jnp.zeros((1, OBS + G1 - G0))),
            "sa_encoder": jax.eval_shape(nets.sa_encoder.init, k, jnp.zeros((1, OBS + ACT))),
            "g_encoder": jax.eval_shape(nets.g_encoder.init, k, jnp.zeros((1, G1 - G0))),
        }
        mapped = {"actor": actor, **critic}
        for net in init:  # same tree structure and shapes as our own init: nothing left out or extra
            assert jax.tree.structure(init[net]) == jax.tree.structure(mapped[net])
            assert jax.tree.map(np.shape, init[net]) == jax.tree.map(np.shape, mapped[net])
            assert to_authors(mapped[net], depth, 2 if net == "actor" else 1).keys() == flat[net].keys()
        # The regenerated values are the ones the authors' side used.
        want = load("networks")[f"{name}/checksum"]
        got = [inputs.checksum(flat[n]) for n in ("actor", "sa_encoder", "g_encoder")]
        np.testing.assert_allclose(got, want, rtol=1e-10)


# ----- networks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["w32_d8", "w32_d8_relu", "w256_d4", "w256_d16"])
def test_networks_give_the_authors_outputs(name):
    width, depth, relu = META["network_configs"][name]
    nets = networks(width, depth, bool(relu))
    actor, critic, _ = params(META["param_specs"][f"networks/{name}"], depth)
    state, action, goal, _ = batch(f"net/{name}", META["network_batch"])
    ref = load("networks")
    sa = nets.sa_encoder.apply(critic["sa_encoder"], jnp.concatenate([state, action], -1))
    g = nets.g_encoder.apply(critic["g_encoder"], goal)
    mean, log_std = nets.actor.apply(actor, jnp.concatenate([state, goal], -1))
    for ours, key in ((sa, "sa"), (g, "g"), (mean, "actor_mean"), (log_std, "actor_log_std")):
        assert rel_err(ours, ref[f"{name}/{key}"]) < 2e-5, key


# ----- losses and gradients ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def loss_setup():
    width, depth = META["loss_config"]
    nets = networks(width, depth)
    actor, critic, _ = params(META["param_specs"]["losses"], depth, calm=True)
    saturating, _, _ = params(META["param_specs"]["losses"], depth)
    return nets, actor, critic, depth, saturating


def test_actor_noise_comes_from_the_same_key():
    ref = load("losses")
    with jax.threefry_partitionable(False):  # the authors' jax 0.4.23 default
        noise = jax.random.normal(jnp.asarray(ref["actor_key"]), ref["actor_noise"].shape)
        keys = jnp.asarray(ref["sgd_actor_keys"])
        sgd_noise = jax.vmap(lambda k: jax.random.normal(k, ref["sgd_actor_noise"].shape[1:]))(keys)
    np.testing.assert_allclose(np.asarray(noise), ref["actor_noise"], rtol=1e-6, atol=1e-7)  # erfinv: 1 ulp
    np.testing.assert_allclose(np.asarray(sgd_noise), ref["sgd_actor_noise"], rtol=1e-6, atol=1e-7)


def critic_terms(nets, critic, coeff=None):
    state, action, goal, _ = batch("loss", META["loss_batch"])
    valid = jnp.ones(len(state), bool)
    coeff = META["logsumexp_penalty_coeff"] if coeff is None else coeff
    return jax.value_and_grad(train.critic_loss, has_aux=True)(
        critic, nets, contrastive.CONTRASTIVE_LOSSES["infonce"], state, action, goal, valid, coeff
    )


def test_critic_loss_and_gradient(loss_setup):
    nets, _, critic, depth, _ = loss_setup
    ref = load("losses")
    (loss, (metrics, _)), grad = critic_terms(nets, critic)
    assert rel_err(loss, ref["critic_loss"]) < 2e-5
    assert rel_err(metrics["logsumexp"], ref["critic_logsumexp"].mean()) < 2e-5
    for net in ("sa_encoder", "g_encoder"):
        for leaf, g in to_authors(grad[net], depth, 1).items():
            assert rel_err(g, ref[f"critic_grad/{net}/{leaf}"]) < 1e-5, (net, leaf)


def actor_terms(nets, actor, critic, correction="authors", grad=True):
    state, _, goal, _ = batch("loss", META["loss_batch"])
    ref = load("losses")
    valid = jnp.ones(len(state), bool)
    nets = nets._replace(log_prob_correction=correction)
    psi = nets.g_encoder.apply(critic["g_encoder"], goal)
    alpha = jnp.exp(jnp.float32(META["log_alpha"]))
    fn = jax.value_and_grad(train.actor_loss, has_aux=True) if grad else lambda *a: (train.actor_loss(*a), None)
    with jax.threefry_partitionable(False):
        return fn(actor, critic, alpha, nets, state, goal, psi, valid, jnp.asarray(ref["actor_key"]))


def test_actor_loss_and_gradient_with_the_authors_log_prob(loss_setup):
    nets, actor, critic, depth, _ = loss_setup
    ref = load("losses")
    (loss, log_prob), grad = actor_terms(nets, actor, critic)
    assert rel_err(log_prob, ref["log_prob"]) < 2e-5
    assert rel_err(loss, ref["actor_loss"]) < 2e-5
    for leaf, g in to_authors(grad, depth, 2).items():
        assert rel_err(g, ref[f"actor_grad/{leaf}"]) < 1e-5, leaf


def pre_tanh(nets, actor):
    """u = mean + std * noise of the loss batch, float64, from our actor and the authors' noise."""
    state, _, goal, _ = batch("loss", META["loss_batch"])
    mean, log_std = nets.actor.apply(actor, jnp.concatenate([state, goal], -1))
    noise = load("losses")["actor_noise"].astype(np.float64)
    return np.asarray(mean, np.float64) + np.exp(np.asarray(log_std, np.float64)) * noise, mean, log_std


def test_saturating_actor_agrees_within_the_authors_formula_conditioning(loss_setup):
    """An init-like actor (log_std up to 2) saturates tanh on a quarter of the rows. There,
    log(1 - tanh(u)^2 + 1e-6) in float32 loses digits on both sides (1 - tanh^2 cancels), so rows
    with |u| < 4 must agree to 2e-5, and saturated rows within 8 eps / (1 - tanh(u)^2 + 1e-6)
    summed over the row's dims (measured: at most 3.8 of those units)."""
    nets, _, critic, _, saturating = loss_setup
    ref = load("losses")
    (_, log_prob), _ = actor_terms(nets, saturating, critic, grad=False)
    u, _, _ = pre_tanh(nets, saturating)
    diff = np.abs(np.asarray(log_prob, np.float64) - ref["saturating_log_prob"])
    calm_rows = (np.abs(u) < 4).all(1)
    assert 0.1 < 1 - calm_rows.mean() < 0.5  # the fixture does saturate
    assert diff[calm_rows].max() < 2e-5 * np.abs(ref["saturating_log_prob"]).max()
    bound = np.sum(8 * np.finfo(np.float32).eps / (1 - np.tanh(u) ** 2 + 1e-6), -1)
    assert np.all(diff <= bound + 1e-4)


def test_exact_log_prob_differs_from_the_authors_only_by_the_tanh_term(loss_setup):
    """Our default (exact log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))) minus the authors'
    log(1 - tanh(u)^2 + 1e-6): per row, exactly the float64 difference of the two log-dets.
    Measured (docs/parity.md): ~6e-5 per row for a non-saturated policy, up to 11.2 for the
    init-like one (flat at log(1e-6) beyond |u| ~ 7 there, still -2|u| + 2 log 2 here)."""
    nets, actor, critic, _, saturating = loss_setup
    ref = load("losses")
    for params, key in ((actor, "log_prob"), (saturating, "saturating_log_prob")):
        (_, log_prob), _ = actor_terms(nets, params, critic, "exact", grad=False)
        u, _, _ = pre_tanh(nets, params)
        want = np.sum(np.log(1 - np.tanh(u) ** 2 + 1e-6) - 2 * (np.log(2) - u - np.logaddexp(0, -2 * u)), -1)
        got = np.asarray(log_prob, np.float64) - ref[key]
        tol = np.sum(8 * np.finfo(np.float32).eps / (1 - np.tanh(u) ** 2 + 1e-6), -1) + 1e-4
        assert np.all(np.abs(got - want) <= tol)
        assert np.all(want > 0)


def test_alpha_loss_and_gradient():
    ref = load("losses")
    log_prob = jnp.asarray(ref["log_prob"])
    valid = jnp.ones(len(log_prob), bool)
    loss, grad = jax.value_and_grad(train.alpha_loss)(
        jnp.float32(META["log_alpha"]), log_prob, META["target_entropy"], valid
    )
    assert rel_err(loss, ref["alpha_loss"]) < 2e-6
    assert rel_err(grad, ref["alpha_grad"]) < 2e-6


# ----- whole SGD steps (Adam included) ----------------------------------------------------------


def run_sgd_steps(nets, actor, critic, correction="authors", coeff=None):
    """META['sgd_steps'] of our train.sgd_step on the authors' batches, keys and initial state."""
    ref = load("losses")
    n, steps, lr = META["loss_batch"], META["sgd_steps"], META["lr"]
    config = train.Config(env_id="ant", batch_size=n, log_prob_correction=correction,
                          logsumexp_penalty_coeff=META["logsumexp_penalty_coeff"] if coeff is None else coeff)
    derived = train.Derived(obs_dim=OBS, goal_start=G0, goal_end=G1, action_dim=ACT, env_steps_per_training_step=1,
                            prefill_unrolls=1, training_steps_per_epoch=1, window=1,
                            target_entropy=META["target_entropy"])
    s = train.Setup(config, derived, nets._replace(log_prob_correction=correction),
                    train.Optimizers(optax.adam(lr), optax.adam(lr), optax.adam(lr)),
                    contrastive.CONTRASTIVE_LOSSES["infonce"], None, None)
    log_alpha = jnp.float32(META["log_alpha"])
    ts = train.TrainingState(actor_params=actor, critic_params=critic, log_alpha=log_alpha,
                             actor_opt=optax.adam(lr).init(actor), critic_opt=optax.adam(lr).init(critic),
                             alpha_opt=optax.adam(lr).init(log_alpha), key=jax.random.PRNGKey(0))
    # One env slot; rows 0..n-1 hold the states, rows n..2n-1 their future states (the goals).
    step = jax.jit(lambda ts, buf, idx, key: train.sgd_step(s, ts, buf, idx, key))
    idx = replay.SampleIndices(row=jnp.arange(n), env=jnp.zeros(n, jnp.int32), goal_row=n + jnp.arange(n),
                               valid=jnp.ones(n, bool))
    metrics = []
    with jax.threefry_partitionable(False):
        for i in range(steps):
            state, action, _, future = batch(f"sgd/{i}", n)
            buf = replay.init(2 * n, 1, OBS, ACT)
            buf = buf.replace(state=buf.state.at[:n, 0].set(state).at[n:, 0].set(future),
                              action=buf.action.at[:n, 0].set(action))
            ts, m = step(ts, buf, idx, jnp.asarray(ref["sgd_actor_keys"][i]))
            metrics.append(m)
    return ts, metrics


def sgd_errors(ts, depth, init_actor, init_critic):
    """Per-leaf max |ours - authors'| after the steps, in units of the authors' own displacement
    from the initial parameters (about steps x lr per entry under Adam)."""
    ref = load("losses")
    errs = {}
    trees = [("sgd_actor", ts.actor_params, init_actor, 2)]
    trees += [(f"sgd_critic/{k}", ts.critic_params[k], init_critic[k], 1) for k in ("sa_encoder", "g_encoder")]
    for prefix, ours, init, heads in trees:
        start = to_authors(init, depth, heads)
        for leaf, v in to_authors(ours, depth, heads).items():
            want = ref[f"{prefix}/{leaf}"]
            errs[f"{prefix}/{leaf}"] = np.max(np.abs(v - want)) / np.max(np.abs(want - start[leaf]))
    return errs


def test_sgd_steps_end_at_the_authors_parameters(loss_setup):
    nets, actor, critic, depth, _ = loss_setup
    ref = load("losses")
    ts, metrics = run_sgd_steps(nets, actor, critic)
    errs = sgd_errors(ts, depth, actor, critic)
    worst = max(errs, key=errs.get)
    assert errs[worst] < 1e-3, (worst, errs[worst])
    assert rel_err(ts.log_alpha - META["log_alpha"], ref["sgd_log_alpha"] - META["log_alpha"]) < 1e-4
    for ours, theirs in (("critic_loss", "critic_loss"), ("actor_loss", "actor_loss"), ("alpha_loss", "alph_aloss")):
        got = np.array([float(m[ours]) for m in metrics])
        assert rel_err(got, ref[f"sgd_metrics/{theirs}"]) < 2e-5, ours


# ----- hindsight goal sampling ------------------------------------------------------------------


def horizons(episode: np.ndarray) -> np.ndarray:
    """Later steps of the same episode inside the window, per step."""
    T = len(episode)
    return np.array([np.sum(episode[t + 1:] == episode[t]) for t in range(T)])


def offset_counts(episode, gamma, samples, seed=0) -> np.ndarray:
    """counts[t, k]: our future_offsets' draws of offset k for step t over `samples` windows."""
    T = len(episode)
    f = jax.jit(jax.vmap(lambda k: replay.future_offsets(k, jnp.asarray(episode), gamma)))
    counts = np.zeros((T, T), np.int64)
    for c in range(samples // 5000):
        off, valid = f(jax.random.split(jax.random.PRNGKey(seed + c), 5000))
        off = np.where(np.asarray(valid), np.asarray(off), 0)
        for t in range(T):
            counts[t] += np.bincount(off[:, t], minlength=T)
    return counts


def two_sample_chi2(a: np.ndarray, b: np.ndarray, H: np.ndarray):
    """Sum over steps t of the two-sample chi-square on offsets 1..H_t -> (statistic, dof)."""
    stat, dof = 0.0, 0
    for t in np.nonzero(H >= 2)[0]:
        x, y = a[t, 1:H[t] + 1].astype(float), b[t, 1:H[t] + 1].astype(float)
        na, nb = x.sum(), y.sum()
        keep = (x + y) > 0
        x, y = x[keep], y[keep]
        stat += np.sum((np.sqrt(nb / na) * x - np.sqrt(na / nb) * y) ** 2 / (x + y))
        dof += keep.sum() - 1
    return stat, dof


def law(H: int, gamma: float) -> np.ndarray:
    p = gamma ** np.arange(H, dtype=np.float64)  # P(k) proportional to gamma^(k-1), k = 1..H
    return p / p.sum()


def power(H: np.ndarray, gamma0: float, gamma1: float, n: int, alpha: float) -> float:
    """Power of two_sample_chi2 (n draws per side and step) against samplers with gamma1."""
    lam, dof = 0.0, 0
    for h in H[H >= 2]:
        p0, p1 = law(h, gamma0), law(h, gamma1)
        lam += (n / 2) * np.sum((p1 - p0) ** 2 / p0)  # two-sample noncentrality, equal sizes
        dof += h - 1
    crit = stats.chi2.ppf(1 - alpha, dof)
    return float(stats.ncx2.sf(crit, dof, lam))


ALPHA = 1e-3  # false-alarm rate of the goal-sampling tests


@pytest.fixture(scope="module")
def goal_sampling():
    ref = load("goal_sampling")
    episode, gamma, n = ref["episode"], float(ref["gamma"]), int(ref["samples"])
    authors = np.zeros((len(episode), len(episode)), np.int64)
    for t in range(len(episode) - 1):  # their goal index j for step t -> offset j - t
        authors[t, : len(episode) - t] = ref["counts"][t, t:]
    return episode, gamma, n, authors, horizons(episode)


def test_goal_offsets_follow_the_authors_distribution(goal_sampling):
    """Two-sample chi-square, our sampler vs theirs (20000 windows of 200 steps each side), over every
    step with >= 2 possible offsets. The design's power to see a sampler with gamma 0.985 instead of
    0.99 is computed here and required to be > 0.99 (it is ~1.0; docs/parity.md)."""
    episode, gamma, n, authors, H = goal_sampling
    ours = offset_counts(episode, gamma, n)
    stat, dof = two_sample_chi2(ours, authors, H)
    p = stats.chi2.sf(stat, dof)
    assert p > ALPHA, (stat, dof, p)
    assert power(H, gamma, 0.985, n, ALPHA) > 0.99
    # Both against the exact law too (goodness of fit, pooled over steps).
    for counts in (ours, authors):
        chi, d = 0.0, 0
        for t in np.nonzero(H >= 2)[0]:
            obs = counts[t, 1:H[t] + 1]
            exp = law(H[t], gamma) * obs.sum()
            chi += np.sum((obs - exp) ** 2 / exp)
            d += H[t] - 1
        assert stats.chi2.sf(chi, d) > ALPHA


def test_goal_sampling_test_detects_a_wrong_discount(goal_sampling):
    """The same test rejects our own sampler run with gamma 0.985: the test can fail."""
    episode, gamma, n, authors, H = goal_sampling
    stat, dof = two_sample_chi2(offset_counts(episode, 0.985, n, seed=7), authors, H)
    assert stats.chi2.sf(stat, dof) < ALPHA


def test_episode_last_steps_are_self_goals_there_and_masked_here(goal_sampling):
    """The authors' sampler gives an episode's last step (no later step in the window) its own state
    as goal (offset 0), and trains on it; ours marks it invalid and leaves it out of the losses.
    Elsewhere their 1e-5 diagonal mass makes offset 0 possible but rare (~1e-7 per draw)."""
    episode, gamma, n, authors, H = goal_sampling
    last = np.nonzero(H[:-1] == 0)[0]
    assert np.all(authors[last, 0] == n)
    rest = np.nonzero(H[:-1] > 0)[0]
    assert authors[rest, 0].sum() < 20  # measured: 2 of 3.88M draws
    offsets, valid = replay.future_offsets(jax.random.PRNGKey(0), jnp.asarray(episode), gamma)
    assert not np.asarray(valid)[last].any() and np.asarray(valid)[rest].all()


def test_window_starts_include_the_newest_window_here_but_not_there():
    """Authors: start ~ U{0, ..., size - window - 1} (randint's exclusive maximum), so the newest
    stored step is never sampled; ours: U{0, ..., size - window}. Both uniform on their range."""
    ref = load("buffer_window")
    rows, window, theirs = int(ref["rows"]), int(ref["window"]), ref["starts"]
    assert theirs[rows - window:].sum() == 0 and (theirs[: rows - window] > 0).all()
    assert stats.chisquare(theirs[: rows - window]).pvalue > ALPHA
    num_envs = 3
    buf = replay.init(rows, num_envs, 1, 1)
    buf = replay.insert(buf, jnp.broadcast_to(jnp.arange(rows, dtype=jnp.float32)[:, None, None], (rows, num_envs, 1)),
                        jnp.zeros((rows, num_envs, 1)), jnp.zeros((rows, num_envs), jnp.int32))
    f = jax.jit(jax.vmap(lambda k: replay.sample_indices(buf, k, window=window, gamma=0.99, num_batches=1,
                                                         batch_size=num_envs * window)))
    draws = 1000
    idx = f(jax.random.split(jax.random.PRNGKey(1), draws))
    row, env = np.asarray(idx.row).reshape(draws, -1), np.asarray(idx.env).reshape(draws, -1)
    starts = np.concatenate([np.where(env == e, row, rows).min(1) for e in range(num_envs)])
    ours = np.bincount(starts, minlength=rows)
    assert ours[rows - window + 1:].sum() == 0 and (ours[: rows - window + 1] > 0).all()
    assert stats.chisquare(ours[: rows - window + 1]).pvalue > ALPHA


# ----- evaluation metrics -----------------------------------------------------------------------


def test_evaluation_metrics_on_the_same_recorded_trajectory():
    """Our evaluator and the authors' CrlEvaluator on one recorded evaluation (16 envs x 40 steps of
    success/dist metrics, some episodes ending early): per env, metrics summed over the steps of its
    first episode, then averaged over envs; success_any = share of envs with a success."""
    import make_fixtures
    from brax.envs.base import Env, State

    n, length = META["eval_envs"], META["eval_length"]
    env = make_fixtures.replay_env_class(Env, State)()
    policy = lambda actor_params, critic_params, obs, key: jnp.arange(n, dtype=jnp.float32)[:, None]  # noqa: E731
    metrics = train.make_evaluator(env, policy, num_envs=n, episode_length=length)(None, None, jax.random.PRNGKey(0))
    ref = load("evaluation")
    for key in ("eval/episode_success", "eval/episode_success_any", "eval/episode_dist", "eval/avg_episode_length"):
        np.testing.assert_allclose(float(metrics[key]), ref[key.replace("/", "__")], rtol=1e-6, err_msg=key)
    # The figures are not trivial: early ends cut the sums, some envs never succeed.
    success, _, done = make_fixtures.eval_table()
    assert 0 < ref["eval__episode_success_any"] < 1 and ref["eval__avg_episode_length"] < length
    assert ref["eval__episode_success"] < success.sum(1).mean()


# ----- environments: sizes, goal indices, timing, compiled-model parameters ---------------------

# Our arm scenes are our own model (envs/panda.py: primitive geoms, no goal-marker body), laid out
# differently from the authors' mesh XML: here arm_* compare sizes, goal indices and timing; their
# compiled joints, masses and actuators are compared joint by joint in tests/test_reference_envs.py.
OWN_MODEL = ("arm_",)
# Known differences, as measured (authors', ours). reacher: the authors' code sets opt.timestep 0.005
# with sys.tree_replace, which brax 0.10.1 (their pinned version) does not use for its spring
# pipeline (it steps with sys.dt, still the XML's 0.01), so their reacher takes 0.04 s per env
# step; ours 0.02 s (4 x 0.005, what their code asks for).
KNOWN = {("reacher", "dt"): (0.04, 0.02), ("reacher", "sim_timestep"): (0.01, 0.005)}


def our_env_facts(env_id):
    import envs

    e = envs.make(env_id)
    facts = {"observation_size": e.observation_size, "action_size": e.action_size, "obs_dim": e.obs_dim,
             "goal_start": e.goal_start, "goal_end": e.goal_end, "dt": float(e.dt), "n_frames": e._n_frames,
             "sim_timestep": float(e.dt) / e._n_frames, "backend": e.backend}
    if not env_id.startswith(OWN_MODEL):
        s = e.sys
        facts.update(dof_damping=s.dof_damping, dof_armature=s.dof_armature, jnt_stiffness=s.jnt_stiffness,
                     actuator_gear=s.actuator.gear, actuator_ctrl_range=s.actuator.ctrl_range,
                     geom_friction=s.geom_friction, body_mass=s.body_mass, jnt_range=s.jnt_range)
    return facts


@pytest.mark.parametrize("env_id", META["env_ids"])
def test_env_sizes_timing_and_model_match_the_authors(env_id):
    ref = load("env_facts")
    for name, ours in our_env_facts(env_id).items():
        theirs = ref[f"{env_id}/{name}"]
        if theirs.dtype.kind in "US":
            assert str(ours) == str(theirs), name
            continue
        ours = np.asarray(ours, np.float64)
        if (env_id, name) in KNOWN:
            want_theirs, want_ours = KNOWN[(env_id, name)]
            np.testing.assert_allclose([float(theirs), float(ours)], [want_theirs, want_ours], rtol=1e-6,
                                       err_msg=f"{env_id} {name} changed: update KNOWN and docs/parity.md")
            continue
        assert ours.shape == theirs.shape, (name, ours.shape, theirs.shape)
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7, err_msg=name)

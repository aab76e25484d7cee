"""Prints the figures of docs/parity.md: how far our code is from the authors' fixtures.

    uv run python scripts/reference/figures.py     (our venv; reads tests/data/reference)
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

import test_reference as T  # noqa: E402
import test_reference_envs as E  # noqa: E402


def main():
    meta = T.META
    print(f"authors' commit {meta['authors_commit']}, jax {meta['jax']}, flax {meta['flax']}, brax {meta['brax']}")
    print("\n| network | sa_encoder | g_encoder | actor mean | actor log_std |\n|---|---|---|---|---|")
    ref = T.load("networks")
    for name, (width, depth, relu) in meta["network_configs"].items():
        nets = T.networks(width, depth, bool(relu))
        actor, critic, _ = T.params(meta["param_specs"][f"networks/{name}"], depth)
        state, action, goal, _ = T.batch(f"net/{name}", meta["network_batch"])
        sa = nets.sa_encoder.apply(critic["sa_encoder"], jnp.concatenate([state, action], -1))
        g = nets.g_encoder.apply(critic["g_encoder"], goal)
        mean, log_std = nets.actor.apply(actor, jnp.concatenate([state, goal], -1))
        errs = [T.rel_err(x, ref[f"{name}/{k}"]) for x, k in
                ((sa, "sa"), (g, "g"), (mean, "actor_mean"), (log_std, "actor_log_std"))]
        print(f"| {name} | " + " | ".join(f"{e:.1e}" for e in errs) + " |")

    width, depth = meta["loss_config"]
    nets = T.networks(width, depth)
    actor, critic, _ = T.params(meta["param_specs"]["losses"], depth, calm=True)
    sat, _, _ = T.params(meta["param_specs"]["losses"], depth)
    ref = T.load("losses")
    (c, _), cg = T.critic_terms(nets, critic)
    c_leaf = max(T.rel_err(v, ref[f"critic_grad/{n}/{k}"]) for n in ("sa_encoder", "g_encoder")
                 for k, v in T.to_authors(cg[n], depth, 1).items())
    (a, lp), ag = T.actor_terms(nets, actor, critic)
    a_leaf = max(T.rel_err(v, ref[f"actor_grad/{k}"]) for k, v in T.to_authors(ag, depth, 2).items())
    al, alg = jax.value_and_grad(T.train.alpha_loss)(jnp.float32(meta["log_alpha"]), jnp.asarray(ref["log_prob"]),
                                                       meta["target_entropy"], jnp.ones(len(lp), bool))
    print(f"\ncritic loss {float(c):.6f}: rel err {T.rel_err(c, ref['critic_loss']):.1e}, worst gradient leaf {c_leaf:.1e}")
    print(f"actor loss {float(a):.6f}: rel err {T.rel_err(a, ref['actor_loss']):.1e}, log_prob {T.rel_err(lp, ref['log_prob']):.1e}, "
          f"worst gradient leaf {a_leaf:.1e}")
    print(f"alpha loss {float(al):.6f}: rel err {T.rel_err(al, ref['alpha_loss']):.1e}, gradient {T.rel_err(alg, ref['alpha_grad']):.1e}")
    ts, metrics = T.run_sgd_steps(nets, actor, critic)
    errs = T.sgd_errors(ts, depth, actor, critic)
    worst = max(errs, key=errs.get)
    print(f"{meta['sgd_steps']} SGD steps: worst leaf {worst} {errs[worst]:.1e} of the step's displacement; "
          f"median leaf {np.median(list(errs.values())):.1e}; log_alpha "
          f"{T.rel_err(ts.log_alpha - meta['log_alpha'], ref['sgd_log_alpha'] - meta['log_alpha']):.1e}")

    eps = np.finfo(np.float32).eps
    for label, params, key in (("calm", actor, "log_prob"), ("saturating", sat, "saturating_log_prob")):
        u, _, _ = T.pre_tanh(nets, params)
        (_, lpa), _ = T.actor_terms(nets, params, critic, grad=False)
        (_, lpe), _ = T.actor_terms(nets, params, critic, "exact", grad=False)
        d_auth = np.abs(np.asarray(lpa, np.float64) - ref[key])
        cond = np.sum(eps / (1 - np.tanh(u) ** 2 + 1e-6), -1)
        d_exact = np.asarray(lpe, np.float64) - ref[key]
        sat_rows = ~(np.abs(u) < 4).all(1)
        print(f"{label} actor: rows with |u| >= 4: {sat_rows.mean():.1%}; authors' form: max |diff| "
              f"{d_auth.max():.2e} ({(d_auth / cond).max():.1f} conditioning units); exact - authors' per row: "
              f"median {np.median(d_exact):.2e}, max {d_exact.max():.3g}, mean {d_exact.mean():.3g}")

    episode, gamma, n = (T.load("goal_sampling")[k] for k in ("episode", "gamma", "samples"))
    authors = np.zeros((len(episode), len(episode)), np.int64)
    counts = T.load("goal_sampling")["counts"]
    for t in range(len(episode) - 1):
        authors[t, : len(episode) - t] = counts[t, t:]
    H = T.horizons(episode)
    ours = T.offset_counts(episode, float(gamma), int(n))
    stat, dof = T.two_sample_chi2(ours, authors, H)
    print(f"\ngoal offsets: chi2 {stat:.1f} on {dof} dof, p = {stats.chi2.sf(stat, dof):.3f}; power at alpha 1e-3 against "
          + ", ".join(f"gamma {g1}: {T.power(H, float(gamma), g1, int(n), 1e-3):.3f}" for g1 in (0.985, 0.9875, 0.989)))
    last = np.nonzero(H[:-1] == 0)[0]
    rest = np.nonzero(H[:-1] > 0)[0]
    print(f"authors' self-goals: {authors[last, 0].sum()} of {len(last) * n} last-step draws, "
          f"{authors[rest, 0].sum()} of {len(rest) * n} other draws")
    w = T.load("buffer_window")
    s = np.nonzero(w["starts"])[0]
    print(f"authors' window starts: {s.min()}..{s.max()} (rows {int(w['rows'])}, window {int(w['window'])})")
    ref = T.load("env_facts")
    print("\n| env | differs from the authors' |\n|---|---|")
    for env_id in meta["env_ids"]:
        diffs = []
        for name, ours in T.our_env_facts(env_id).items():
            theirs = ref[f"{env_id}/{name}"]
            if theirs.dtype.kind in "US":
                same = str(ours) == str(theirs)
            else:
                ours = np.asarray(ours, np.float64)
                same = ours.shape == theirs.shape and np.allclose(ours, theirs, rtol=1e-6, atol=1e-7)
            if not same:
                diffs.append(f"{name}: theirs {np.asarray(theirs).tolist()}, ours {np.asarray(ours).tolist()}")
        sizes = ", ".join(f"{k} {ref[f'{env_id}/{k}']}" for k in ("observation_size", "action_size", "goal_start",
                                                                      "goal_end", "n_frames"))
        print(f"| {env_id} ({sizes}) | {'; '.join(diffs) or 'nothing'} |")
    print("\n| env | resets: KS p (entries) | matched obs | step 1: ours-theirs / their kick / our kick "
          "| step 10 | step 100 | success |\n|---|---|---|---|---|---|---|")
    for env_id in E.PARITY_ENV_IDS:
        p_bonf, n, differ = E.ks_min_p(E.our_resets(env_id), E.ref(env_id, "resets"))
        obs0 = np.asarray(E.matched_state(E.our_env(env_id), env_id).obs)
        err0 = np.abs(obs0 - E.ref(env_id, "obs0")).max()
        dev = E.deviations(env_id)
        ours = E.our_probe_metrics(env_id)
        agree = int((np.asarray(ours["success"]) == E.ref(env_id, "probe_success")).sum())
        cells = [" / ".join(f"{dev[t][k]:.1e}" for k in ("ours_vs_theirs", "their_kick", "our_kick")) for t in (1, 10, 100)]
        print(f"| {env_id} | {min(p_bonf, 1.0):.2f} ({n}){' (constants differ: ' + str(differ) + ')' if differ else ''} "
              f"| {err0:.1e} | {' | '.join(cells)} | {agree}/{len(ours['success'])} |")
    e = T.load("evaluation")
    print("evaluation: " + ", ".join(f"{k.replace('__', '/')} {float(v):.4f}" for k, v in e.items()))


if __name__ == "__main__":
    main()

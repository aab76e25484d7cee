"""Residual networks of paper Fig. 2: parameter counts, scan == layer loop, bounds."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import train


def count(params) -> int:
    return sum(x.size for x in jax.tree.leaves(params))


def torso_params(in_dim: int, width: int, depth: int) -> int:
    # Input Dense + LayerNorm, then `depth` x (Dense + LayerNorm), whatever the block size.
    dense_norm = lambda i: i * width + width + 2 * width  # noqa: E731
    return dense_norm(in_dim) + depth * dense_norm(width)


@pytest.mark.parametrize(
    "width,depth,skip", [(32, 4, 4), (16, 8, 4), (8, 64, 4), (16, 6, 2), (16, 3, 0), (24, 12, 6)]
)
def test_encoder_parameter_count(width, depth, skip):
    enc = train.Encoder(train.Torso(width, depth, skip, nn.swish), repr_dim=5)
    params = enc.init(jax.random.PRNGKey(0), jnp.zeros((1, 7)))
    assert count(params) == torso_params(7, width, depth) + width * 5 + 5


@pytest.mark.parametrize("width,depth", [(32, 4), (16, 16)])
def test_actor_parameter_count(width, depth):
    actor = train.Actor(train.Torso(width, depth, 4, nn.swish), action_dim=3)
    params = actor.init(jax.random.PRNGKey(0), jnp.zeros((1, 9)))
    assert count(params) == torso_params(9, width, depth) + 2 * (width * 3 + 3)


def test_blocks_are_scanned_with_stacked_parameters():
    enc = train.Encoder(train.Torso(16, 64, 4, nn.swish), repr_dim=4)
    params = enc.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
    kernels = [
        x
        for path, x in jax.tree_util.tree_leaves_with_path(params)
        if "blocks" in jax.tree_util.keystr(path) and x.ndim == 3
    ]
    # 4 Dense kernels per block, each stacked over the 16 blocks.
    assert len(kernels) == 4 and all(k.shape == (16, 16, 16) for k in kernels)


def layer_by_layer_torso(params, x, skip, act=jax.nn.swish):
    """The architecture written out layer by layer, for comparison with the scan."""

    def dense_norm(p, h):
        h = h @ p["Dense_0"]["kernel"] + p["Dense_0"]["bias"]
        mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
        h = (h - mu) / jnp.sqrt(var + 1e-6) * p["LayerNorm_0"]["scale"] + p["LayerNorm_0"]["bias"]
        return act(h)

    h = dense_norm(params["DenseNormAct_0"], x)
    blocks = params["blocks"]
    num_blocks = blocks["DenseNormAct_0"]["Dense_0"]["kernel"].shape[0]
    for b in range(num_blocks):
        y = h
        for layer in range(max(skip, 1)):
            y = dense_norm(jax.tree.map(lambda a, b=b: a[b], blocks[f"DenseNormAct_{layer}"]), y)
        h = h + y if skip else y
    return h


@pytest.mark.parametrize("skip,depth", [(4, 8), (2, 6), (0, 3)])
def test_scanned_torso_equals_the_layer_by_layer_torso(skip, depth):
    torso = train.Torso(16, depth, skip, nn.swish)
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 7))
    params = torso.init(jax.random.PRNGKey(0), x)
    got = torso.apply(params, x)
    want = layer_by_layer_torso(params["params"], x, skip)
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


def test_skip_connections_change_the_function():
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 7))
    residual = train.Torso(16, 8, 4, nn.swish)
    params = residual.init(jax.random.PRNGKey(0), x)
    plain = layer_by_layer_torso(params["params"], x, skip=0)  # same weights, no skips
    assert not np.allclose(residual.apply(params, x), plain, atol=1e-3)


def test_relu_option_is_used():
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 7))
    swish_net, relu_net = train.Torso(16, 4, 4, nn.swish), train.Torso(16, 4, 4, nn.relu)
    params = swish_net.init(jax.random.PRNGKey(0), x)
    np.testing.assert_allclose(
        relu_net.apply(params, x), layer_by_layer_torso(params["params"], x, 4, jax.nn.relu), atol=2e-5
    )
    assert (relu_net.apply(params, x) != swish_net.apply(params, x)).any()


def test_actor_log_std_is_squashed_into_bounds():
    actor = train.Actor(train.Torso(16, 4, 4, nn.swish), action_dim=2)
    x = jnp.concatenate([jnp.full((1, 6), 1e4), jnp.full((1, 6), -1e4), jnp.zeros((1, 6))])
    params = actor.init(jax.random.PRNGKey(0), x)
    params = jax.tree.map(lambda p: p * 50.0, params)  # push pre-activations to the extremes
    _, log_std = actor.apply(params, x)
    assert (log_std >= train.LOG_STD_MIN).all() and (log_std <= train.LOG_STD_MAX).all()
    assert float(log_std.max() - log_std.min()) > 3.0  # the bounds are actually reached


@pytest.mark.parametrize("field,depth,skip", [("critic", 6, 4), ("actor", 10, 4), ("critic", 9, 2)])
def test_depth_must_be_a_multiple_of_the_block_size(field, depth, skip):
    config = train.Config(**{f"{field}_depth": depth, f"{field}_skip_connections": skip})
    with pytest.raises(train.ConfigError, match=f"--{field}_depth {depth} is not a multiple"):
        train.validate(config)


def test_plain_mlp_accepts_any_depth():
    train.validate(train.Config(critic_depth=7, critic_skip_connections=0))


def test_remat_gives_the_same_values_and_gradients():
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 7))
    plain, remat = train.Torso(16, 8, 4, nn.swish), train.Torso(16, 8, 4, nn.swish, remat=True)
    params = plain.init(jax.random.PRNGKey(0), x)
    assert jax.tree.structure(params) == jax.tree.structure(remat.init(jax.random.PRNGKey(0), x))

    def loss(module):
        return jax.jit(jax.value_and_grad(lambda p: jnp.sum(module.apply(p, x) ** 2)))(params)

    (v_plain, g_plain), (v_remat, g_remat) = loss(plain), loss(remat)
    np.testing.assert_allclose(v_plain, v_remat, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)  # recomputation reorders float ops


def test_bfloat16_matmuls_keep_float32_params_and_outputs():
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 7))
    enc32 = train.Encoder(train.Torso(32, 8, 4, nn.swish), repr_dim=4)
    enc16 = train.Encoder(train.Torso(32, 8, 4, nn.swish, dtype=jnp.bfloat16), repr_dim=4)
    params = enc32.init(jax.random.PRNGKey(0), x)
    assert all(p.dtype == jnp.float32 for p in jax.tree.leaves(enc16.init(jax.random.PRNGKey(0), x)))
    out16, out32 = enc16.apply(params, x), enc32.apply(params, x)
    assert out16.dtype == jnp.float32
    assert not np.array_equal(out16, out32)  # the matmuls really ran in bfloat16
    np.testing.assert_allclose(out16, out32, rtol=0.1, atol=0.1)


def test_networks_follow_the_config():
    config = train.Config(remat=True, matmul_dtype="bfloat16", critic_depth=8, actor_network_width=32)
    derived = train.Derived(10, 4, 7, 2, 1, 1, 1, 1, -1.0)
    nets = train.make_networks(config, derived)
    assert nets.sa_encoder.torso.remat and nets.sa_encoder.torso.dtype == jnp.bfloat16
    assert (nets.sa_encoder.torso.depth, nets.actor.torso.width) == (8, 32)
    assert nets.sa_encoder.torso is not nets.g_encoder.torso


@pytest.mark.parametrize("remat", [False, True])
def test_unrolled_blocks_give_the_same_parameters_values_and_gradients(remat):
    x = jax.random.normal(jax.random.PRNGKey(1), (5, 7))
    looped = train.Torso(16, 12, 4, nn.swish, remat=remat, unroll_blocks=2)  # 3 blocks > 2: loop
    unrolled = train.Torso(16, 12, 4, nn.swish, remat=remat, unroll_blocks=3)
    params = looped.init(jax.random.PRNGKey(0), x)
    assert jax.tree.map(jnp.shape, params) == jax.tree.map(jnp.shape, unrolled.init(jax.random.PRNGKey(0), x))

    def value_and_grad(module):
        return jax.jit(jax.value_and_grad(lambda p: jnp.sum(module.apply(p, x) ** 2)))

    # Only the unrolled program is free of loops.
    assert "while" in value_and_grad(looped).lower(params).as_text()
    assert "while" not in value_and_grad(unrolled).lower(params).as_text()
    (v_loop, g_loop), (v_unrolled, g_unrolled) = (
        value_and_grad(looped)(params),
        value_and_grad(unrolled)(params),
    )
    np.testing.assert_allclose(v_loop, v_unrolled, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(g_loop), jax.tree.leaves(g_unrolled), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_unroll_blocks_follows_the_config():
    derived = train.Derived(10, 4, 7, 2, 1, 1, 1, 1, -1.0)
    nets = train.make_networks(train.Config(unroll_blocks=5), derived)
    assert nets.sa_encoder.torso.unroll_blocks == nets.actor.torso.unroll_blocks == 5
    with pytest.raises(train.ConfigError, match="--unroll_blocks must be >= 0"):
        train.validate(train.Config(unroll_blocks=-1))

"""16-bit parameters through MindSpore's training wrappers on the CPU backend.

What runs there (docs/usage.md, "16-bit parameters in ms.Model and the train cells"):

- `nn.TrainOneStepCell` and `ms.Model` with no loss scale manager or with
  `FixedLossScaleManager(drop_overflow_update=False)` (a TrainOneStepCell with `sens`; AdamOffload is given
  the same `loss_scale` and divides it out in float32 on the host);
- `ms.Model(..., amp_level="O3")`, and "O2" given a `FixedLossScaleManager(drop_overflow_update=False)`; on a
  float32 net both cast in the graph and the parameters stay float32;
- `nn.TrainOneStepWithLossScaleCell` only with `get_overflow_status` taken from `amp.all_finite`
  (`AllFiniteLossScaleCell` below, the recipe the docs show): MindSpore's own falls through to the
  Ascend-only `NPUGetFloatStatusV2` on CPU, for every optimizer.

`ms.Model` with `drop_overflow_update=True`, `DynamicLossScaleManager` or `amp_level="O2"` alone (which brings
a DynamicLossScaleManager) is refused by MindSpore on CPU (ValueError, before the optimizer is touched), for
its own optimizers as for ours.

Numbers: each step the test computes the gradient the wrapper computes (the same cells, ops and mode) and
feeds it, widened to float32 and unscaled, to a float32 AdamOffload on float32 parameters holding the
widened starting values. The 16-bit run's masters must equal that run's parameters bit for bit, its
moments and step state too, and its 16-bit parameters must be the masters rounded to nearest even. The
loss scales are powers of two, so unscaling a widened 16-bit gradient in float32 is exact; eps is large
beside the gradients, so a loss scale divided out twice or not at all changes the bits
(test_the_reference_sees_a_wrong_loss_scale shows it does).
"""
import numpy as np
import pytest

import mindspore as ms
import mindspore.dataset as ds
from mindspore import Parameter, ParameterTuple, Tensor, amp, nn, ops

from mindspore_offload import AdamOffload
from support.masters import rne

MODES = pytest.mark.parametrize("mode", [ms.GRAPH_MODE, ms.PYNATIVE_MODE], ids=["graph", "pynative"])
SIXTEEN = pytest.mark.parametrize("dtype", [ms.float16, ms.bfloat16], ids=["float16", "bfloat16"])
SCALE = 128.0
STEPS = 4
SHAPE = (4, 5)  # the batch and the features of the elementwise net
# eps near the size of the unscaled gradients (0.1 to 3 here): the step then depends on their scale.
HYPER = dict(learning_rate=1e-4, eps=0.5)


@pytest.fixture(autouse=True)
def _folder(tmp_path, monkeypatch):
    """A failed graph compile writes rank_0/om/... to the working folder; the mode is put back after."""
    monkeypatch.chdir(tmp_path)
    mode = ms.get_context("mode")
    yield
    ms.set_context(mode=mode)


class AllFiniteLossScaleCell(nn.TrainOneStepWithLossScaleCell):
    """TrainOneStepWithLossScaleCell whose overflow check works on the CPU backend (the docs' recipe). The
    gradients are checked in float32: the CPU backend has no bfloat16 IsFinite."""

    def get_overflow_status(self, status, compute_output):
        return ops.logical_not(amp.all_finite([grad.astype(ms.float32) for grad in compute_output]))


def rounded(values, dtype):
    """float32 values -> a Tensor of ``dtype`` (MindSpore's Cast; used where the values fit ``dtype`` exactly)."""
    if dtype == ms.float32:
        return Tensor(values, ms.float32)
    return Tensor(values, ms.float32).astype(dtype)


def sixteen_bit_values(rng, shape, scale, dtype):
    """float32 values that ``dtype`` holds exactly."""
    values = (rng.standard_normal(shape) * scale).astype(np.float32)
    return rounded(values, dtype).astype(ms.float32).asnumpy()


class Elementwise(nn.Cell):
    """out = x * w + b with w and b of the batch's shape: no MatMul and no reduction in 16 bits, so it runs
    in bfloat16 on the CPU backend too (which has neither for bfloat16)."""

    def __init__(self, dtype, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.w = Parameter(rounded(sixteen_bit_values(rng, SHAPE, 1.0, dtype), dtype), name="w")
        self.b = Parameter(rounded(sixteen_bit_values(rng, SHAPE, 0.5, dtype), dtype), name="b")

    def construct(self, x):
        return x.astype(self.dtype) * self.w + self.b


class Dense16(nn.Cell):
    """A float16 Dense layer (CPU computes MatMul in float16, not in bfloat16)."""

    def __init__(self, dtype=ms.float16, seed=0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.dtype = dtype
        self.fc = nn.Dense(SHAPE[1], 3)
        for param in self.fc.get_parameters():
            param.set_dtype(dtype)
        self.fc.weight.set_data(rounded(sixteen_bit_values(rng, (3, SHAPE[1]), 0.5, dtype), dtype))
        self.fc.bias.set_data(rounded(sixteen_bit_values(rng, (3,), 0.5, dtype), dtype))

    def construct(self, x):
        return self.fc(x.astype(self.dtype))


class SquaredError(nn.Cell):
    """The loss in float32, as amp's own loss cell computes it: the gradient reaches the net in its dtype."""

    def construct(self, out, y):
        return ((out.astype(ms.float32) - y) ** 2).mean()


def data(steps=STEPS, seed=1, label_shape=SHAPE):
    rng = np.random.default_rng(seed)
    return [(Tensor(rng.standard_normal(SHAPE).astype(np.float32)),
             Tensor(rng.standard_normal(label_shape).astype(np.float32))) for _ in range(steps)]


class Gradients(nn.Cell):
    """The gradients a train cell hands its optimizer: the same forward, sens and (for the loss-scale cell)
    the same unscale in the gradient's dtype, run in the same mode."""

    def __init__(self, loss_net, sens, unscale):
        super().__init__(auto_prefix=False)
        self.loss_net = loss_net
        self.weights = ParameterTuple(loss_net.trainable_params())
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        self.sens = Tensor(sens, ms.float32)
        self.unscale = unscale
        self.hyper_map = ops.HyperMap()

    def construct(self, x, y):
        loss = self.loss_net(x, y)
        sens = ops.ones_like(loss) * ops.cast(self.sens, ops.dtype(loss))
        grads = self.grad(self.loss_net, self.weights)(x, y, sens)
        if self.unscale:
            grads = self.hyper_map(ops.partial(_unscale, self.sens), grads)
        return grads


_unscale = ops.MultitypeFuncGraph("test_unscale")


@_unscale.register("Tensor", "Tensor")
def _(scale, grad):
    return grad * ops.cast(ops.reciprocal(scale), ops.dtype(grad))


# wrapper -> (the sens its gradient is taken with, does the cell itself divide the gradient by it?)
WRAPPERS = {"TrainOneStepCell": (1.0, False), "Model": (1.0, False), "Model+FixedLossScaleManager": (SCALE, False),
            "Model+O3": (1.0, False), "Model+O2+FixedLossScaleManager": (SCALE, False),
            "AllFiniteLossScaleCell": (SCALE, True)}


def train_cell(wrapper, net, opt):
    """The train cell ``wrapper`` names, as a user would build it."""
    if wrapper == "TrainOneStepCell":
        return nn.TrainOneStepCell(nn.WithLossCell(net, SquaredError()), opt)
    if wrapper == "Model":
        return ms.Model(net, loss_fn=SquaredError(), optimizer=opt).train_network
    if wrapper == "Model+FixedLossScaleManager":
        manager = ms.FixedLossScaleManager(SCALE, drop_overflow_update=False)
        return ms.Model(net, loss_fn=SquaredError(), optimizer=opt, loss_scale_manager=manager).train_network
    if wrapper == "Model+O3":
        return ms.Model(net, loss_fn=SquaredError(), optimizer=opt, amp_level="O3").train_network
    if wrapper == "Model+O2+FixedLossScaleManager":  # O2 alone brings a DynamicLossScaleManager: refused on CPU
        manager = ms.FixedLossScaleManager(SCALE, drop_overflow_update=False)
        return ms.Model(net, loss_fn=SquaredError(), optimizer=opt, amp_level="O2",
                        loss_scale_manager=manager).train_network
    if wrapper == "AllFiniteLossScaleCell":
        return AllFiniteLossScaleCell(nn.WithLossCell(net, SquaredError()), opt, scale_sense=Tensor(SCALE))
    raise KeyError(wrapper)


def bits(x):
    a = x.asnumpy() if hasattr(x, "asnumpy") else x
    return a.view(np.uint16 if a.dtype.itemsize == 2 else np.uint32)


def widened_holder(net):
    """float32 Parameters holding ``net``'s trainable values widened, under the same names."""
    return [Parameter(Tensor(p.astype(ms.float32).asnumpy()), name=p.name) for p in net.trainable_params()]


def masters_of(opt):
    return {p.name[len("master."):]: p for p in opt.get_parameters() if p.name.startswith("master.")}


def assert_follows(opt16, params16, opt32, params32):
    """opt16's masters are params32 bit for bit, params16 the masters rounded, and the state is equal."""
    masters = masters_of(opt16)
    assert sorted(masters) == sorted(p.name for p in params16)
    for p16, p32 in zip(params16, params32):
        np.testing.assert_array_equal(bits(masters[p16.name]), bits(p32), err_msg=p16.name)
        np.testing.assert_array_equal(bits(p16), rne(p32.asnumpy(), p16.dtype), err_msg=p16.name)
    for a, b in zip(list(opt16.moment1) + list(opt16.moment2), list(opt32.moment1) + list(opt32.moment2)):
        assert a.name == b.name and a.dtype == ms.float32
        np.testing.assert_array_equal(bits(a), bits(b), err_msg=a.name)
    for name in ("beta1_power", "beta2_power", "global_step"):
        np.testing.assert_array_equal(getattr(opt16, name).asnumpy(), getattr(opt32, name).asnumpy(), err_msg=name)


def run_alongside(wrapper, net, mode, steps=STEPS, **hyper):
    """Trains ``net`` through ``wrapper`` and, beside it, a float32 AdamOffload on the widened values fed
    each step's gradient widened and unscaled. Returns (opt16, opt32, reference parameters)."""
    ms.set_context(mode=mode)
    params32 = widened_holder(net)
    sens, unscaled_by_cell = WRAPPERS[wrapper]
    loss_scale = 1.0 if unscaled_by_cell else sens
    opt16 = AdamOffload(net.trainable_params(), loss_scale=loss_scale, **{**HYPER, **hyper})
    opt32 = AdamOffload(params32, **{**HYPER, **hyper})
    cell = train_cell(wrapper, net, opt16)
    cell.set_train()
    grads = Gradients(nn.WithLossCell(net, SquaredError()), sens, unscaled_by_cell)
    for x, y in data(steps):
        step_grads = grads(x, y)
        assert all(g.dtype == p.dtype for g, p in zip(step_grads, net.trainable_params()))
        out = cell(x, y)
        if unscaled_by_cell:
            assert not out[1].asnumpy(), "the cell saw an overflow"
        # widen, then unscale in float32: exact for a power-of-two scale (no 16-bit value underflows there)
        opt32(tuple(Tensor(g.astype(ms.float32).asnumpy() * np.float32(1.0 / loss_scale)) for g in step_grads))
    assert int(opt16.global_step.asnumpy()[0]) == steps
    return opt16, opt32, params32


@MODES
@SIXTEEN
@pytest.mark.parametrize("wrapper", WRAPPERS)
def test_masters_follow_float32_adam_fed_the_same_gradients(wrapper, dtype, mode):
    net = Elementwise(dtype)
    opt16, opt32, params32 = run_alongside(wrapper, net, mode)
    assert_follows(opt16, net.trainable_params(), opt32, params32)
    assert not np.array_equal(bits(params32[0]), bits(widened_holder(Elementwise(dtype))[0]))  # it moved


@pytest.mark.compat
@MODES
@pytest.mark.parametrize("wrapper", ["Model+FixedLossScaleManager", "AllFiniteLossScaleCell"])
def test_a_float16_dense_net_with_weight_decay_and_nesterov(wrapper, mode):
    """MatMul in float16; decay and Nesterov on the host path. (Weight decay is added to the scaled
    gradient before the division, as MindSpore's optimizers do, so the reference here keeps its own
    loss_scale and sees the scaled gradient for the Model case.)"""
    ms.set_context(mode=mode)
    net = Dense16()
    params32 = widened_holder(net)
    cell_scales = wrapper == "AllFiniteLossScaleCell"
    hyper = dict(HYPER, weight_decay=0.01, use_nesterov=True, loss_scale=1.0 if cell_scales else SCALE)
    opt16, opt32 = AdamOffload(net.trainable_params(), **hyper), AdamOffload(params32, **hyper)
    cell, sens = train_cell(wrapper, net, opt16), WRAPPERS[wrapper][0]
    cell.set_train()
    grads = Gradients(nn.WithLossCell(net, SquaredError()), sens, cell_scales)
    for x, y in data(label_shape=(SHAPE[0], 3)):
        step_grads = grads(x, y)
        cell(x, y)
        # Widened by NumPy: in MindSpore 2.7.0-2.7.2 (GRAPH_MODE, CPU), Tensor.astype(float32) of these float16
        # MatMul gradients returns values float16 cannot hold, not the float16 gradient widened.
        opt32(tuple(Tensor(g.asnumpy().astype(np.float32)) for g in step_grads))
    assert_follows(opt16, net.trainable_params(), opt32, params32)


def test_the_reference_sees_a_wrong_loss_scale():
    """The comparison above can fail: the same gradients divided by the scale twice, or not at all, give
    other masters with this eps."""
    ms.set_context(mode=ms.PYNATIVE_MODE)
    net = Elementwise(ms.float16)
    start = widened_holder(net)
    grads = Gradients(nn.WithLossCell(net, SquaredError()), SCALE, False)(*data(1)[0])
    results = []
    for factor in (1.0 / SCALE, 1.0, 1.0 / SCALE ** 2):  # right, missing division, double division
        params = [Parameter(p.copy(), name=p.name) for p in start]
        opt = AdamOffload(params, **HYPER)
        opt(tuple(Tensor(g.astype(ms.float32).asnumpy() * np.float32(factor)) for g in grads))
        results.append(np.concatenate([bits(p).ravel() for p in params]))
    assert not np.array_equal(results[0], results[1])
    assert not np.array_equal(results[0], results[2])


def everything(cell):
    """Every Parameter of a train cell but the loss-scale manager's own (it moves on an overflow)."""
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()
            if p.name not in ("scale_sense", "current_iterator_step", "last_overflow_iterator_step")}


@MODES
@SIXTEEN
def test_an_overflowed_step_changes_nothing(dtype, mode):
    """AllFiniteLossScaleCell with a DynamicLossScaleManager: the overflowed step halves the scale and
    skips the optimizer; the next finite step moves everything again."""
    ms.set_context(mode=mode)
    net = Elementwise(dtype)
    opt = AdamOffload(net.trainable_params(), **HYPER)
    manager = ms.DynamicLossScaleManager(SCALE, scale_factor=2, scale_window=1000)
    cell = AllFiniteLossScaleCell(nn.WithLossCell(net, SquaredError()), opt, scale_sense=manager.get_update_cell())
    cell.set_train()
    (x, y), (x2, y2) = data(2)
    assert not cell(x, y)[1].asnumpy()
    before = everything(cell)
    assert any(name.startswith("master.") for name in before) and "moment1.w" in before
    bad = x.asnumpy().copy()
    bad[1, 2] = np.inf  # one infinite input: that gradient element is inf or NaN
    assert cell(Tensor(bad), y)[1].asnumpy()
    assert float(cell.scale_sense.asnumpy()) == SCALE / 2
    after = everything(cell)
    assert sorted(after) == sorted(before)
    for name, value in before.items():
        np.testing.assert_array_equal(after[name], value, err_msg=name)
    assert not cell(x2, y2)[1].asnumpy()
    moved = everything(cell)
    # w and b themselves may not move: one step of lr 1e-4 is below their 16-bit ulp
    for name in ("master.w", "master.b", "moment1.w", "moment2.b", "beta1_power", "global_step"):
        assert not np.array_equal(moved[name], before[name]), name


@MODES
def test_without_an_overflow_check_an_infinite_gradient_is_applied_as_float32_would(mode):
    """TrainOneStepCell (and Model with drop_overflow_update=False) checks nothing: the step runs, and the
    masters and moments take the NaN and inf the float32 path takes from the same gradient."""
    net = Elementwise(ms.float16)
    ms.set_context(mode=mode)
    params32 = widened_holder(net)
    opt16, opt32 = AdamOffload(net.trainable_params(), **HYPER), AdamOffload(params32, **HYPER)
    cell = nn.TrainOneStepCell(nn.WithLossCell(net, SquaredError()), opt16)
    grads = Gradients(nn.WithLossCell(net, SquaredError()), 1.0, False)
    x, y = data(1)[0]
    bad = x.asnumpy().copy()
    bad[1, 2] = np.inf
    step_grads = grads(Tensor(bad), y)
    cell(Tensor(bad), y)
    opt32(tuple(Tensor(g.astype(ms.float32).asnumpy()) for g in step_grads))
    assert_follows(opt16, net.trainable_params(), opt32, params32)
    assert np.isnan(masters_of(opt16)["w"].asnumpy()[1, 2])  # inf / inf in the step
    assert np.isfinite(masters_of(opt16)["w"].asnumpy()[0]).all()


def _float32_dense():
    net = nn.Dense(SHAPE[1], 3)
    rng = np.random.default_rng(0)
    net.weight.set_data(Tensor(rng.standard_normal((3, SHAPE[1])).astype(np.float32)))
    net.bias.set_data(Tensor(rng.standard_normal(3).astype(np.float32)))
    return net


def _refusing_model(net, opt, how):
    kwargs = {"drop_overflow_update=True": dict(loss_scale_manager=ms.FixedLossScaleManager(SCALE, True)),
              "DynamicLossScaleManager": dict(loss_scale_manager=ms.DynamicLossScaleManager()),
              "amp_level=O2": dict(amp_level="O2")}[how]
    return ms.Model(net, loss_fn=SquaredError(), optimizer=opt, **kwargs)


def _state(net, opt):
    return {p.name: p.asnumpy().copy() for p in list(net.get_parameters()) + list(opt.get_parameters())}


@pytest.mark.parametrize("how", ["drop_overflow_update=True", "DynamicLossScaleManager", "amp_level=O2"])
def test_model_refuses_overflow_checked_loss_scaling_on_cpu_as_for_nn_adam(how):
    """MindSpore's build_train_network refuses these on CPU, whatever the optimizer, before any step: the
    same ValueError for nn.Adam and nn.AdamOffload on float32 as for AdamOffload on float16."""
    for net, make in ((_float32_dense(), nn.Adam), (_float32_dense(), nn.AdamOffload), (Dense16(), AdamOffload)):
        opt = make(net.trainable_params())
        before = _state(net, opt)
        with pytest.raises(ValueError, match=r"FixedLossScaleManager\(drop_overflow_update=False\)"):
            _refusing_model(net, opt, how)
        after = _state(net, opt)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)


@MODES
def test_plain_loss_scale_cell_fails_on_cpu_as_for_nn_adam(mode):
    """nn.TrainOneStepWithLossScaleCell's own overflow check needs NPUGetFloatStatusV2 (Ascend) on CPU; the
    call fails before the optimizer runs, for nn.Adam and nn.AdamOffload on float32 and for AdamOffload on
    float16 alike."""
    ms.set_context(mode=mode)
    x, y = data(1, label_shape=(SHAPE[0], 3))[0]
    for net, make in ((_float32_dense(), nn.Adam), (_float32_dense(), nn.AdamOffload), (Dense16(), AdamOffload)):
        opt = make(net.trainable_params())
        cell = nn.TrainOneStepWithLossScaleCell(nn.WithLossCell(net, SquaredError()), opt, scale_sense=Tensor(SCALE))
        before = _state(net, opt)
        with pytest.raises(RuntimeError, match="NPUGetFloatStatusV2"):
            cell(x, y)
        after = _state(net, opt)
        for name, value in before.items():
            np.testing.assert_array_equal(after[name], value, err_msg=name)


@pytest.mark.compat
@MODES
def test_o3_keeps_float32_parameters_and_matches_nn_adamoffload(mode):
    """amp_level O3 on a float32 net casts in the graph: the parameters, their gradients and the optimizer
    state stay float32, so AdamOffload takes its float32 path and gives nn.AdamOffload's bits."""
    ms.set_context(mode=mode)
    states = []
    for make in (lambda p: nn.AdamOffload(p, **HYPER), lambda p: AdamOffload(p, **HYPER)):
        net = _float32_dense()
        opt = make(net.trainable_params())
        cell = ms.Model(net, loss_fn=SquaredError(), optimizer=opt, amp_level="O3").train_network
        cell.set_train()
        for x, y in data(label_shape=(SHAPE[0], 3)):
            cell(x, y)
        assert {p.dtype for p in net.get_parameters()} == {ms.float32}
        assert not any(p.name.startswith("master.") for p in opt.get_parameters())
        states.append(_state(net, opt))
    assert sorted(states[0]) == sorted(states[1])
    for name, value in states[0].items():
        np.testing.assert_array_equal(bits(states[1][name]), bits(value), err_msg=name)


@pytest.mark.parametrize("mode, sink", [(ms.GRAPH_MODE, False), (ms.GRAPH_MODE, True), (ms.PYNATIVE_MODE, False)],
                         ids=["graph", "graph-sink", "pynative"])
def test_model_train_with_a_fixed_loss_scale(mode, sink):
    """ms.Model.train over a dataset with a float16 Dense net and FixedLossScaleManager(drop=False): the
    loss falls and each 16-bit parameter is its master rounded."""
    ms.set_context(mode=mode)
    net = Dense16()
    opt = AdamOffload(net.trainable_params(), learning_rate=0.01, loss_scale=SCALE)
    model = ms.Model(net, loss_fn=SquaredError(), optimizer=opt,
                     loss_scale_manager=ms.FixedLossScaleManager(SCALE, drop_overflow_update=False))
    rng = np.random.default_rng(2)
    x = rng.standard_normal((64, SHAPE[1])).astype(np.float32)
    y = (x @ rng.standard_normal((SHAPE[1], 3)) * 0.5).astype(np.float32)
    dataset = ds.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(16)
    loss_net = nn.WithLossCell(net, SquaredError())
    before = float(loss_net(Tensor(x), Tensor(y)).asnumpy())
    model.train(10, dataset, dataset_sink_mode=sink)
    after = float(loss_net(Tensor(x), Tensor(y)).asnumpy())
    assert after < 0.7 * before, (before, after)
    assert int(opt.global_step.asnumpy()[0]) == 40
    masters = masters_of(opt)
    for p in net.trainable_params():
        np.testing.assert_array_equal(bits(p), rne(masters[p.name].asnumpy(), ms.float16), err_msg=p.name)


def adam_step_bound(t, beta1=0.9, beta2=0.999):
    """The most one Adam step can move an element, over the learning rate, at step t, whatever the
    gradients: |m_t| <= (1 - beta1) * sqrt(sum_j (beta1^2 / beta2)^j) * sqrt(v_t / (1 - beta2)) by
    Cauchy-Schwarz, times the bias correction sqrt(1 - beta2^t) / (1 - beta1^t). It is 1 at t = 1 (a
    step of exactly lr when |g| >> eps) and about 1.001 at t = 2..4 with the defaults; eps only shrinks it."""
    ratio = sum((beta1 ** 2 / beta2) ** j for j in range(t))
    return np.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * (1 - beta1) / np.sqrt(1 - beta2) * np.sqrt(ratio)


@MODES
def test_a_float16_forward_stays_within_the_adam_bound_of_a_float32_one(mode):
    """Model + FixedLossScaleManager on a float16 Dense net against the same net in float32 (from the widened
    weights, same data): the forwards differ, so the gradients differ by float16 rounding and can even
    change sign. Each run's element moves at most lr * adam_step_bound(t) at step t, so the master and
    the float32 weights differ by at most twice the sum of those (plus a float32 rounding per step). That
    is the tightest bound that holds for any gradients: Adam's m / sqrt(v) has no bounded sensitivity to
    a gradient's rounding where m cancels. (Observed here: 1 to 2 float32 ulps, 1.5e-7, against 8e-4.)
    The bit-for-bit tests above feed identical gradients instead."""
    ms.set_context(mode=mode)
    lr, steps = 1e-4, STEPS
    net16 = Dense16()
    net32 = nn.Dense(SHAPE[1], 3)
    for p32, p16 in zip(net32.trainable_params(), net16.trainable_params()):
        p32.set_data(Tensor(p16.astype(ms.float32).asnumpy()))
    runs = []
    for net in (net16, net32):
        opt = AdamOffload(net.trainable_params(), learning_rate=lr, loss_scale=SCALE)
        cell = train_cell("Model+FixedLossScaleManager", net, opt)
        cell.set_train()
        for x, y in data(steps, label_shape=(SHAPE[0], 3)):
            cell(x, y)
        runs.append(opt)
    masters = masters_of(runs[0])
    bound = 2 * lr * sum(adam_step_bound(t) for t in range(1, steps + 1))
    for p16, p32, first in zip(net16.trainable_params(), net32.trainable_params(), Dense16().trainable_params()):
        start = first.astype(ms.float32).asnumpy()
        ulps = steps * np.spacing(np.abs(start) + bound, dtype=np.float32)
        gap = np.abs(masters[p16.name].asnumpy() - p32.asnumpy())
        assert (gap <= bound + ulps).all(), (p16.name, gap.max(), bound)
        for moved in (masters[p16.name].asnumpy(), p32.asnumpy()):
            assert (np.abs(moved - start) > 0.5 * lr).any(), p16.name


@MODES
def test_model_with_the_all_finite_cell_skips_an_overflowed_batch(mode):
    """The CPU way to dynamic loss scaling in ms.Model: build the cell and hand it to Model as the network.
    Of 8 batches one holds an inf: 7 steps are taken and the scale is halved once."""
    ms.set_context(mode=mode)
    net = Dense16()
    opt = AdamOffload(net.trainable_params(), learning_rate=0.01)
    manager = ms.DynamicLossScaleManager(SCALE, scale_factor=2, scale_window=1000)
    cell = AllFiniteLossScaleCell(nn.WithLossCell(net, SquaredError()), opt, scale_sense=manager.get_update_cell())
    rng = np.random.default_rng(3)
    x = rng.standard_normal((32, SHAPE[1])).astype(np.float32)
    y = rng.standard_normal((32, 3)).astype(np.float32)
    x[13, 1] = np.inf  # batch 3 of 8
    ms.Model(cell).train(1, ds.NumpySlicesDataset({"x": x, "y": y}, shuffle=False).batch(4), dataset_sink_mode=False)
    assert int(opt.global_step.asnumpy()[0]) == 7
    assert float(cell.scale_sense.asnumpy()) == SCALE / 2
    for p in net.trainable_params():
        assert np.isfinite(masters_of(opt)[p.name].asnumpy()).all(), p.name
        assert np.isfinite(p.asnumpy()).all(), p.name

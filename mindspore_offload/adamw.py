"""AdamWeightDecayOffload: the API of MindSpore's nn.AdamWeightDecay, with the moments on the host.

The state, the step kinds and the host ops are _host_state.HostStateOptimizer's, as AdamOffload's; this
class brings AdamW's hyper-parameters, its checkpoint names and its ``construct``, which maps the AdamW
rows of ``_steps.STEP_KINDS`` (the "adamw_*" ones) over the parameters.
"""
from mindspore import Tensor, jit
from mindspore.common import dtype as mstype
from mindspore.ops import functional as F

from mindspore_offload import _host_state, _steps
from mindspore_offload import _validation as check
from mindspore_offload import kernel


class AdamWeightDecayOffload(_host_state.HostStateOptimizer):
    r"""
    AdamW with its moments in host memory: a drop-in replacement for `mindspore.nn.AdamWeightDecay`.

    The first and second moment of every parameter (`adam_m` and `adam_v`) are allocated in host memory
    and updated there, with the parameter's decoupled weight decay, by mindspore-offload's C++ kernel
    (the same machinery as :class:`mindspore_offload.AdamOffload`: custom operators pinned to the CPU, one
    per parameter, or on the CPU backend one per run of float32 parameters that share a learning rate).
    On the CPU backend the parameter is host memory too and the kernel updates it in place; on a device
    backend (and on the CPU with ``MINDSPORE_OFFLOAD_HOST_APPLY=0``) the kernel reads the parameter,
    computes its new value, and the graph assigns it on the device.

    The rule is `nn.AdamWeightDecay`'s, without bias correction. At each step, for a parameter :math:`w`
    with gradient :math:`g`, learning rate :math:`\gamma` and weight decay :math:`\lambda`:

    .. math::
        \begin{array}{ll} \\
            m \leftarrow \beta_1 m + (1 - \beta_1) g \\
            v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
            w \leftarrow w - \gamma \left( \frac{m}{\sqrt{v} + \epsilon} + \lambda w \right)
        \end{array}

    where :math:`\lambda` is 0 for a parameter that does not decay.

    Note:
        MindSpore 2.10's CPU kernel has two formulas, and `rounding` picks which one every element gets.
        With ``"double"`` (the default) the result on the CPU backend is bit for bit `nn.AdamWeightDecay`'s
        on a CPU without AVX-512, where MindSpore rounds every element in one scalar loop (the new weight
        computed in double precision and rounded once); that double divide and square root make the host
        pass slower than Adam's. ``"float32"`` is MindSpore's AVX-512 vector body's formula, all in float32:
        the host pass runs at Adam's speed, and the weights differ from ``"double"``'s by a few ulps a step
        (docs/design.md). Both `GRAPH_MODE` and `PYNATIVE_MODE` work.

        Without groups, the weight decay applies to every parameter whose name contains neither "beta"
        nor "gamma" (LayerNorm's and BatchNorm's scale and shift). With groups, a group decays when its
        `weight_decay` (or the optimizer's) is greater than 0 or a Cell.

        Parameters may be float32, float16 or bfloat16. A 16-bit parameter gets a float32 master
        `master.<name>` on the host, which takes the float32 step exactly (its decay reads the master, not
        the rounded parameter); the parameter receives the master rounded to nearest even. Gradients
        must have their parameter's dtype.

        The state has `nn.AdamWeightDecay`'s names (`adam_m.<name>`, `adam_v.<name>`, `global_step`,
        `learning_rate`), so a checkpoint of either loads into the other; the masters and, with
        `shard_state`, `shard_layout` come in addition.

    Args:
        params (Union[list[Parameter], list[dict]]): The parameters to train: a list of `Parameter`, or of
            groups, each a `dict` with "params" (required), "lr", "weight_decay" (both optional, falling back
            to `learning_rate` and `weight_decay`) or, in a group of its own, "order_params".
        learning_rate (Union[float, int, Tensor, Iterable, LearningRateSchedule]): The learning rate: a
            fixed number (0 or more) or scalar Tensor, a 1-D Tensor or Iterable with one rate per step, or a
            `LearningRateSchedule` called with the global step. Default: ``1e-3`` .
        beta1 (float): Decay rate of the first moment, strictly between 0.0 and 1.0. Default: ``0.9`` .
        beta2 (float): Decay rate of the second moment, strictly between 0.0 and 1.0. Default: ``0.999`` .
        eps (float): Added to the denominator; greater than 0. Default: ``1e-6`` .
        weight_decay (Union[float, int, Cell]): The decoupled weight decay: a fixed number (0 or more), or a
            `Cell` called with the global step. Default: ``0.0`` .
        shard_state (bool): Not in `nn.AdamWeightDecay`. With ``True`` in `DATA_PARALLEL` over N > 1 ranks,
            each rank keeps only a flat ``ceil(size/N)`` slice of each large parameter's moments (and
            master), as :class:`mindspore_offload.AdamOffload` does; the parameters come out bit-identical
            to ``False``. Default: ``False`` .
        rounding (str): Not in `nn.AdamWeightDecay`; keyword only. ``"double"`` or ``"float32"``, as the
            Note says. Default: ``"double"`` .

    Inputs:
        - **gradients** (tuple[Tensor]) - One gradient per parameter, in the optimizer's parameter order,
          each of its parameter's shape and dtype.

    Outputs:
        tuple[bool], one ``True`` per parameter, in the optimizer's parameter order.

    Raises:
        TypeError: If an element of `params` is neither a `Parameter` nor a dict.
        TypeError: If `learning_rate` is none of int, float, Tensor, Iterable or LearningRateSchedule.
        TypeError: If `weight_decay`, or a group's, is none of int, float or Cell.
        TypeError: If `beta1`, `beta2` or `eps` is not a float.
        TypeError: If `shard_state` is not a bool, or `rounding` not a str.
        TypeError: If a parameter is not float32, float16 or bfloat16, or, when the step is compiled, a
            gradient's dtype is not its parameter's.
        ValueError: If `params` is empty or holds the same parameter twice.
        ValueError: If `learning_rate`, or a group's "lr", is negative, infinite or NaN (in float32).
        ValueError: If `weight_decay`, or a group's, is negative or infinite (in float32).
        ValueError: If `beta1` or `beta2` is not strictly between 0.0 and 1.0.
        ValueError: If `eps` is less than or equal to 0.
        ValueError: If `shard_state` is ``True`` in a parallel mode other than `DATA_PARALLEL` or stand-alone.
        ValueError: If `rounding` is neither ``"double"`` nor ``"float32"``.
        ValueError: If, when the step is compiled, a gradient's shape differs from its parameter's.
        KeyError: If a group dict has no "params".
        RuntimeError: If a parameter is in two groups.

    Supported Platforms:
        ``CPU``: run and tested, in `GRAPH_MODE` and `PYNATIVE_MODE`.
        ``Ascend`` ``GPU``: the op is pinned to the CPU and its result assigned on the device; not run there.

    Examples:
        >>> import numpy as np
        >>> import mindspore as ms
        >>> from mindspore import nn
        >>> from mindspore_offload import AdamWeightDecayOffload
        >>>
        >>> net = nn.Dense(16, 4)
        >>> # Decay the weight, not the bias: groups, with order_params keeping the network's order.
        >>> groups = [{"params": [net.weight], "weight_decay": 0.01},
        ...           {"params": [net.bias], "weight_decay": 0.0},
        ...           {"order_params": net.trainable_params()}]
        >>> optim = AdamWeightDecayOffload(groups, learning_rate=1e-3)
        >>> loss = nn.MSELoss()
        >>> train = nn.TrainOneStepCell(nn.WithLossCell(net, loss), optim)
        >>> x = ms.Tensor(np.ones((2, 16), np.float32))
        >>> y = ms.Tensor(np.zeros((2, 4), np.float32))
        >>> _ = train(x, y)
        >>> int(optim.global_step.asnumpy()[0])
        1
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-6, weight_decay=0.0,
                 shard_state=False, *, rounding="double"):
        super().__init__(learning_rate, params, weight_decay)
        name = self.cls_name
        check.check_betas_and_eps(beta1, beta2, eps, name)
        check.check_float32_hyperparameters(self, name)
        check.check_type("shard_state", shard_state, [bool], name)
        check.check_choice("rounding", rounding, _steps.ROUNDINGS, name)
        check.check_parameter_dtypes(self._parameters, name)
        check.check_white_list(kernel.library_path(), name)

        self.beta1 = Tensor(beta1, mstype.float32)
        self.beta2 = Tensor(beta2, mstype.float32)
        self.eps = Tensor(eps, mstype.float32)
        self.no_decay = Tensor(0.0, mstype.float32)  # what nn.AdamWeightDecay passes where nothing decays
        self.rounding = rounding
        self._build_host_state("adamw", ("adam_m", "adam_v"), shard_state, False, False, rounding)

    @jit(backend="ms_backend")
    def construct(self, gradients):
        weight_decay = self.get_weight_decay()
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        decays = weight_decay if self.is_group else self._for_each_parameter(weight_decay)
        decays = self.map_(F.partial(_steps.decay_where_flagged, self.no_decay), self.decay_flags, decays)
        lrs = lr if self.is_group_lr else self._for_each_parameter(lr)
        hyper = (self.beta1, self.beta2, self.eps)
        done = self.map_reverse(F.partial(_steps.update_parameter, hyper), lrs, decays, self.graph_functions,
                                self.host_ops, gradients, self._parameters, self.moment1, self.moment2, self.masters)
        columns = (self._parameters, self.moment1, self.moment2, decays, gradients)
        buckets = self._bucket_updates((), lrs, hyper, columns)
        return F.depend(done, buckets)

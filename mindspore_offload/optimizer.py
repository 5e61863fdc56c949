"""AdamOffload: the API of MindSpore's nn.AdamOffload, with the moments updated by our host kernel.

How one optimizer step is built: every parameter gets a *step kind*, a row of ``_steps.STEP_KINDS``
(float32 on the device or in host memory, a slice of it, a 16-bit parameter with a float32 master, ...),
chosen once at construction. ``construct`` decays and unscales the gradients the graph handles, advances
the shared state (global step, beta powers, learning rate) and maps one function over every parameter,
which calls the parameter's graph function with its host op (_steps.py: the table, the graph functions
and the op factory). The state, the kinds and the ops are built by _host_state.HostStateOptimizer, which
AdamWeightDecayOffload (adamw.py) shares.
"""
from mindspore import Parameter, Tensor, jit
from mindspore.common import dtype as mstype
from mindspore.common.initializer import initializer
from mindspore.ops import functional as F

from mindspore_offload import _host_state, _steps
from mindspore_offload import _validation as check
from mindspore_offload import kernel


class AdamOffload(_host_state.HostStateOptimizer):
    r"""
    Adam whose moments never leave host memory: a drop-in replacement for `mindspore.nn.AdamOffload`.

    The two moment tensors kept for every parameter are allocated in host memory and updated there by
    mindspore-offload's C++ kernel (AVX-512, AVX2 or plain code, picked for the CPU at run time, spread
    over a pool of threads). The compiled graph reaches the kernel through a custom operator pinned to
    the CPU. What happens to the parameter itself depends on where it is stored:

    - on the CPU backend it is host memory as well, and the kernel adds the update to it in the same
      pass (`apply_on_host` is ``True``);
    - on a device backend (Ascend, GPU), and on the CPU when ``MINDSPORE_OFFLOAD_HOST_APPLY=0``, the
      kernel hands back the update and the graph adds it to the parameter on its device.

    Both ways give the same bits. Compared with a plain Adam, the device memory saved is two tensors
    the size of every parameter; the price is a trip to the host for each step.

    Adam itself is described in `Adam: A Method for Stochastic Optimization
    <https://arxiv.org/abs/1412.6980>`_. At step :math:`t`, for a parameter :math:`w` with gradient
    :math:`g`:

    .. math::
        \begin{array}{ll} \\
            m \leftarrow \beta_1 m + (1 - \beta_1) g \\
            v \leftarrow \beta_2 v + (1 - \beta_2) g^2 \\
            \hat{\alpha} = \alpha \sqrt{1 - \beta_2^t} \,/\, (1 - \beta_1^t) \\
            w \leftarrow w - \hat{\alpha} \, m \,/\, (\sqrt{v} + \epsilon)
        \end{array}

    Here :math:`m` and :math:`v` are the `moment1` and `moment2` state, :math:`\alpha` the learning rate,
    :math:`\beta_1^t` and :math:`\beta_2^t` the `beta1_power` and `beta2_power` state, and :math:`\epsilon`
    is `eps`, which is added after the bias correction, not before. With `use_nesterov`, the :math:`m` in
    the last line is replaced by :math:`\beta_1 m + (1 - \beta_1) g`, using the updated :math:`m`.

    Note:
        Both `GRAPH_MODE` and `PYNATIVE_MODE` work and are tested: the step is compiled with `jit` in
        either mode. (MindSpore documents `nn.AdamOffload` for `GRAPH_MODE` only.)

        Weight decay, when given without groups, is applied to every parameter whose name contains
        neither "beta" nor "gamma". A group may set its own `weight_decay`; a group that does not uses
        the optimizer's.

        Parameters may be float32, float16 or bfloat16, mixed in one optimizer. A float16 or bfloat16
        parameter gets a float32 master copy `master.<parameter name>`, beside float32 `moment1` and
        `moment2`, on the host; each step the host updates the master exactly as a float32 parameter
        would be updated (weight decay with the master and the loss scale division both in float32)
        and writes back the master rounded to nearest even, so the device holds only 16-bit tensors.
        See `docs/design.md` (mixed precision) and `memory_report`.

        The state has the names `nn.AdamOffload` gives it (`moment1.<parameter name>`,
        `moment2.<parameter name>`, `beta1_power`, `beta2_power`, plus `global_step` and `learning_rate`
        from `nn.Optimizer`), so a checkpoint written by either optimizer loads into the other. Two kinds
        of state go beyond it: the masters of 16-bit parameters, and, with `shard_state` over several
        ranks, `shard_layout` (this rank, the rank count and the slicing threshold, which the checkpoint
        loader and the merge command read).

        A parameter written after construction (a checkpoint or pretrained weights loaded, `set_data`,
        an `ops.assign`) is where the next step starts, for 16-bit parameters too: their masters restart
        from the written value.

    Args:
        params (Union[list[Parameter], list[dict]]): The parameters to train. Either a list of `Parameter`,
            or a list of groups, each a `dict` with these keys:

            - "params": required, the group's list of `Parameter`.
            - "lr": optional, the group's learning rate, of any kind `learning_rate` accepts; without it,
              the group uses `learning_rate`.
            - "weight_decay": optional, the group's weight decay, of any kind `weight_decay` accepts;
              without it, the group uses `weight_decay`.
            - "order_params": optional, given in a group of its own: every parameter of the other groups,
              in the order the optimizer should walk them (usually the network's order). When a dict
              holds "order_params", its other keys are ignored.

        learning_rate (Union[float, int, Tensor, Iterable, LearningRateSchedule]): The learning rate.
            A float or int (0 or more) is a fixed rate. A scalar Tensor is a fixed rate too; a 1-D Tensor
            or any other Iterable gives one rate per step (element i at step i). A
            `LearningRateSchedule` is called with the global step each step. Default: ``1e-3`` .
        beta1 (float): Decay rate of the first moment, strictly between 0.0 and 1.0. Default: ``0.9`` .
        beta2 (float): Decay rate of the second moment, strictly between 0.0 and 1.0. Default: ``0.999`` .
        eps (float): Added to the denominator so it is never zero; greater than 0. Default: ``1e-8`` .
        use_locking (bool): With ``True``, the host update of one parameter's moments (and of the
            parameter, when it is updated on the host) excludes every other update of the same state in
            this process, so steps run concurrently on the same optimizer each see a whole update. With
            ``False``, such concurrent updates may interleave. Default: ``False`` .
        use_nesterov (bool): With ``True``, take the Nesterov form of the step described above.
            Default: ``False`` .
        weight_decay (Union[float, int, Cell]): The L2 penalty. A float or int (0 or more) is fixed; a
            `Cell` is called with the global step each step and returns the decay to use.
            Default: ``0.0`` .
        loss_scale (float): The gradients are divided by this value before the update; greater than 0.
            Leave it at 1.0 unless training with `mindspore.amp.FixedLossScaleManager` and
            ``drop_overflow_update=False``, in which case give it the manager's `loss_scale`. An int
            is accepted too. Default: ``1.0`` .
        shard_state (bool): Not in `nn.AdamOffload`. With ``True`` in `DATA_PARALLEL` over N > 1 ranks, each
            rank keeps only a flat ``ceil(size/N)`` slice of each parameter's moments (parameters under
            MINDSPORE_OFFLOAD_SHARD_MIN_SIZE elements, default 65536, keep whole ones), and the ranks gather
            the update; the parameters come out bit-identical to ``False``. Stand-alone or on one rank it
            does nothing. A float16 or bfloat16 parameter that large keeps a slice of its float32 master
            too; the ranks gather its new 16-bit value (2 bytes an element). Each rank saves its own slices:
            merge them with ``python -m mindspore_offload.checkpoint merge`` (docs/usage.md).
            Default: ``False`` .

    Inputs:
        - **gradients** (tuple[Tensor]) - One gradient per parameter, in the optimizer's parameter
          order, each of its parameter's shape and dtype.

    Outputs:
        tuple[Tensor], one boolean ``True`` per parameter, in the optimizer's parameter order (what
        `nn.AdamOffload` returns in MindSpore 2.10, whose docstring says Tensor[bool]).

    Raises:
        TypeError: If an element of `params` is neither a `Parameter` nor a dict, or a group's "params"
            holds something that is not a `Parameter`.
        TypeError: If `learning_rate` is none of int, float, Tensor, Iterable or LearningRateSchedule
            (a str is an Iterable: see ValueError).
        TypeError: If `weight_decay`, or a group's, is none of int, float or Cell.
        TypeError: If `beta1`, `beta2` or `eps` is not a Python float (an int or bool is refused).
        TypeError: If `loss_scale` is neither a float nor an int.
        TypeError: If `use_locking`, `use_nesterov` or `shard_state` is not a bool.
        TypeError: If a parameter is not float32, float16 or bfloat16, or, when the step is compiled, a
            gradient's dtype is not its parameter's (nothing has been updated then).
        TypeError: If `MS_CUSTOM_AOT_WHITE_LIST` is set to a folder that does not hold the kernel library.
        ValueError: If `params` is empty, holds the same parameter twice, or its "order_params" do not
            match the grouped parameters.
        ValueError: If `learning_rate`, or a group's "lr", is negative, infinite or NaN (in float32: a
            float beyond float32's range, or an inf or NaN in a Tensor or list, counts too), is a Tensor
            of more than one dimension, or is a str (its characters are read as learning rates).
        ValueError: If `weight_decay`, or a group's, is negative or infinite (in float32).
        ValueError: If `loss_scale` is 0, negative or infinite, or it or its reciprocal is beyond float32.
        ValueError: If `beta1` or `beta2` is not strictly between 0.0 and 1.0 (NaN included), also once
            rounded to float32.
        ValueError: If `eps` is 0, negative, infinite or NaN, or is 0 or infinite in float32.
        ValueError: If a 16-bit parameter's master name `master.<name>` is another parameter's name, or a
            bfloat16 parameter is given on the CPU backend with `MINDSPORE_OFFLOAD_HOST_APPLY=0` (the CPU
            backend cannot assign bfloat16 in the graph).
        ValueError: If `shard_state` is ``True`` in a parallel mode other than `DATA_PARALLEL` or stand-alone.
        ValueError: If, when the step is compiled, a gradient's shape differs from its parameter's.
        ValueError: If `MINDSPORE_OFFLOAD_HOST_APPLY` is set to anything but "0" or "1", or, when the moments
            are sharded, `MINDSPORE_OFFLOAD_SHARD_MIN_SIZE` to anything but a whole number from 0 to 2^63 - 1.
        KeyError: If a group dict has no "params".
        RuntimeError: If a parameter is in two groups.

    Supported Platforms:
        ``CPU``: run and tested, in `GRAPH_MODE` and `PYNATIVE_MODE`.
        ``Ascend`` ``GPU``: the moments' op is pinned to the CPU and the update is added on the device,
        the placement MindSpore documents for `nn.AdamOffload`; not run on these backends.

    Examples:
        >>> import numpy as np
        >>> import mindspore as ms
        >>> from mindspore import nn
        >>> from mindspore_offload import AdamOffload
        >>>
        >>> class SmallNet(nn.Cell):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.conv = nn.Conv2d(1, 4, 3, pad_mode="valid")
        ...         self.flatten = nn.Flatten()
        ...         self.fc = nn.Dense(4 * 6 * 6, 10)
        ...
        ...     def construct(self, x):
        ...         return self.fc(self.flatten(self.conv(x)))
        >>>
        >>> net = SmallNet()
        >>> # The same learning rate and weight decay for every parameter:
        >>> optim = AdamOffload(net.trainable_params(), learning_rate=1e-3)
        >>>
        >>> # Or groups: the convolution decays its weights, the rest learns at 0.01; order_params keeps
        >>> # the network's order. Unset values fall back to learning_rate and weight_decay.
        >>> conv_params = [p for p in net.trainable_params() if "conv" in p.name]
        >>> other_params = [p for p in net.trainable_params() if "conv" not in p.name]
        >>> groups = [{"params": conv_params, "weight_decay": 0.01},
        ...           {"params": other_params, "lr": 0.01},
        ...           {"order_params": net.trainable_params()}]
        >>> optim = AdamOffload(groups, learning_rate=0.1, weight_decay=0.0)
        >>>
        >>> # Train one step, as ms.Model(net, loss_fn=loss, optimizer=optim) would.
        >>> loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
        >>> train = nn.TrainOneStepCell(nn.WithLossCell(net, loss), optim)
        >>> images = ms.Tensor(np.random.default_rng(0).standard_normal((2, 1, 8, 8)), ms.float32)
        >>> labels = ms.Tensor(np.array([3, 7]), ms.int32)
        >>> _ = train(images, labels)
        >>> int(optim.global_step.asnumpy()[0])
        1
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, use_locking=False,
                 use_nesterov=False, weight_decay=0.0, loss_scale=1.0, shard_state=False):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        name = self.cls_name
        check.check_betas_and_eps(beta1, beta2, eps, name)
        check.check_float32_hyperparameters(self, name)
        check.check_type("use_locking", use_locking, [bool], name)
        check.check_type("use_nesterov", use_nesterov, [bool], name)
        check.check_type("shard_state", shard_state, [bool], name)
        check.check_parameter_dtypes(self._parameters, name)
        check.check_white_list(kernel.library_path(), name)

        self.use_locking = use_locking
        self.use_nesterov = use_nesterov
        self.beta1 = Tensor(beta1, mstype.float32)
        self.beta2 = Tensor(beta2, mstype.float32)
        self.eps = Tensor(eps, mstype.float32)
        # State, under nn.AdamOffload's names so checkpoints move between the two.
        self.beta1_power = Parameter(initializer(1, [1], mstype.float32), name="beta1_power")
        self.beta2_power = Parameter(initializer(1, [1], mstype.float32), name="beta2_power")
        self._build_host_state("adam", ("moment1", "moment2"), shard_state, use_locking, use_nesterov)

    def _host_op_variants(self, kinds):
        # A master kind decays and unscales its gradient on the host, in float32 with its master, so it
        # leaves decay_weight and scale_grad; its decay moves into its op (the "Decay" variant).
        decay_on_host = tuple(bool(self.exec_weight_decay and flag) and kind.master
                              for flag, kind in zip(self.decay_flags, kinds))
        self.decay_flags = tuple(flag and not kind.master for flag, kind in zip(self.decay_flags, kinds))
        self.unscaled_on_host = tuple(kind.master for kind in kinds)
        self.any_decay_on_host = any(decay_on_host)
        self.no_decay = Tensor(0.0, mstype.float32)
        return tuple((decay, self.need_scale) for decay in decay_on_host)

    def _advance_state(self):
        """Counts the step and moves beta1**t and beta2**t on by one; returns the new powers."""
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        beta1_power = F.assign(self.beta1_power, self.beta1_power * self.beta1)
        beta2_power = F.assign(self.beta2_power, self.beta2_power * self.beta2)
        return beta1_power, beta2_power

    def _decay_on_host(self):
        """Per parameter, this step's weight decay for the master kinds' host pass. Read where decay_weight
        reads it, before global_step moves on, so a dynamic decay matches the float32 path."""
        if not self.any_decay_on_host:
            return self._for_each_parameter(self.no_decay)
        decay = self.get_weight_decay()
        return decay if self.is_group else self._for_each_parameter(decay)

    def _scale_grad(self, gradients):
        """Optimizer.scale_grad for every gradient but the master kinds' (unscaled on the host)."""
        if self.need_scale and any(self.unscaled_on_host):
            return self.map_(F.partial(_steps.scale_unless_master, self.reciprocal_scale), self.unscaled_on_host,
                             gradients)
        return self.scale_grad(gradients)

    @jit(backend="ms_backend")
    def construct(self, gradients):
        gradients = self.decay_weight(gradients)
        weight_decay = self._decay_on_host()
        gradients = self._scale_grad(gradients)
        lr = self.get_lr()
        beta1_power, beta2_power = self._advance_state()
        hyper = (beta1_power, beta2_power, self.beta1, self.beta2, self.eps, self.reciprocal_scale)
        lrs = lr if self.is_group_lr else self._for_each_parameter(lr)
        # map_reverse issues the parameters last to first, the order nn.AdamOffload uses.
        done = self.map_reverse(F.partial(_steps.update_parameter, hyper), lrs, weight_decay, self.graph_functions,
                                self.host_ops, gradients, self._parameters, self.moment1, self.moment2, self.masters)
        buckets = self._bucket_updates((beta1_power, beta2_power), lrs, (self.beta1, self.beta2, self.eps),
                                       (self._parameters, self.moment1, self.moment2, gradients))
        return F.depend(done, buckets)


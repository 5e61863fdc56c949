"""AdamOffload: MindSpore's nn.AdamOffload, rebuilt on mindspore-offload's host kernel."""
import os

import mindspore as ms
from mindspore import Parameter, Tensor, jit, ops
from mindspore.common import dtype as mstype
from mindspore.common.initializer import initializer
from mindspore.nn.optim.optimizer import Optimizer
from mindspore.ops import composite as C
from mindspore.ops import functional as F

from mindspore_offload import _contiguous
from mindspore_offload import _validation as check
from mindspore_offload import kernel

_adam_offload = C.MultitypeFuncGraph("mindspore_offload_adam")


@_adam_offload.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                        "Tensor", "Tensor")
def _step(opt, beta1_power, beta2_power, beta1, beta2, eps, lr, gradient, param, moment1, moment2):
    """Moments on the host (the custom op, placed on the CPU); the delta added on the parameter's device."""
    delta = opt(moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, gradient)
    return F.depend(True, F.assign_add(param, delta))


_adam_apply = C.MultitypeFuncGraph("mindspore_offload_adam_apply")


@_adam_apply.register("Function", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor", "Tensor",
                      "Tensor", "Tensor")
def _apply(opt, beta1_power, beta2_power, beta1, beta2, eps, lr, gradient, param, moment1, moment2):
    """Parameters already in host memory: the custom op adds the delta to the parameter in the same pass."""
    return F.depend(True, opt(param, moment1, moment2, beta1_power, beta2_power, lr, beta1, beta2, eps, gradient))


def _parameters_on_host():
    """True on the CPU backend, where the parameters live in host memory beside the moments.
    MINDSPORE_OFFLOAD_HOST_APPLY=0 keeps the delta + assign_add path there too."""
    if os.environ.get("MINDSPORE_OFFLOAD_HOST_APPLY", "1").strip() == "0":
        return False
    current = getattr(ms, "get_current_device", None)
    target = current()[0] if current is not None else ms.get_context("device_target")
    return str(target).upper() == "CPU"


def _entry_point(apply, use_nesterov, use_locking):
    return (("AdamOffloadApply" if apply else "AdamOffloadStep") + ("Nesterov" if use_nesterov else "")
            + ("Locked" if use_locking else ""))


class AdamOffload(Optimizer):
    r"""
    A maintained, faster drop-in replacement for `mindspore.nn.AdamOffload`.

    This optimizer runs Adam's moment update on the host CPU and keeps the parameters being updated on the
    device, to minimize the memory cost: moment1 and moment2 never take device memory. The host update is
    mindspore-offload's own kernel (AVX-512, AVX2 or portable code, chosen at run time, multi-threaded),
    called from the compiled graph through a custom operator placed on the CPU; the device only adds the
    resulting delta to each parameter.

    The Adam algorithm is proposed in `Adam: A Method for Stochastic Optimization <https://arxiv.org/abs/1412.6980>`_.

    The updating formulas are as follows,

    .. math::
        \begin{array}{ll} \\
            m_{t+1} = \beta_1 * m_{t} + (1 - \beta_1) * g \\
            v_{t+1} = \beta_2 * v_{t} + (1 - \beta_2) * g * g \\
            l = \alpha * \frac{\sqrt{1-\beta_2^t}}{1-\beta_1^t} \\
            w_{t+1} = w_{t} - l * \frac{m_{t+1}}{\sqrt{v_{t+1}} + \epsilon}
        \end{array}

    :math:`m` represents the 1st moment vector `moment1`, :math:`v` represents the 2nd moment vector `moment2`,
    :math:`g` represents `gradients`, :math:`l` represents scaling factor, :math:`\beta_1, \beta_2` represent
    `beta1` and `beta2`, :math:`t` represents the current step while :math:`beta_1^t` and :math:`beta_2^t` represent
    `beta1_power` and `beta2_power`, :math:`\alpha` represents `learning_rate`, :math:`w` represents `params`,
    :math:`\epsilon` represents `eps`. With `use_nesterov`, the numerator is :math:`\beta_1 m_{t+1} + (1 - \beta_1) g`.
    As in MindSpore, eps is not bias-corrected.

    Note:
        Unlike `nn.AdamOffload`, which is documented for `GRAPH_MODE` only, this optimizer is tested in both
        `GRAPH_MODE` and `PYNATIVE_MODE` (its construct is compiled with `jit` in both).

        If parameters are not grouped, the `weight_decay` in optimizer will be applied on the network parameters without
        'beta' or 'gamma' in their names. Users can group parameters to change the strategy of decaying weight. When
        parameters are grouped, each group can set `weight_decay`. If not, the `weight_decay` in optimizer will be
        applied.

        Parameters must be float32. The checkpoint names (`moment1.*`, `moment2.*`, `beta1_power`, `beta2_power`,
        `global_step`, `learning_rate`) are those of `nn.AdamOffload`, so checkpoints load both ways.

    Args:
        params (Union[list[Parameter], list[dict]]): Must be list of `Parameter` or list of `dict`. When the
            `params` is a list of `dict`, the string "params", "lr", "weight_decay", and "order_params"
            are the keys can be parsed.

            - params: Required. Parameters in current group. The value must be a list of `Parameter`.

            - lr: Optional. If "lr" in the keys, the value of corresponding learning rate will be used.
              If not, the `learning_rate` in optimizer will be used. Fixed and dynamic learning rate are supported.

            - weight_decay: Optional. If "weight_decay" in the keys, the value of corresponding weight decay
              will be used. If not, the `weight_decay` in the optimizer will be used. It should be noted that weight
              decay can be a constant value or a Cell. It is a Cell only when dynamic weight decay is applied.

            - order_params: Optional. When parameters is grouped, this usually is used to maintain the order of
              parameters that appeared in the network to improve performance. The value should be parameters whose
              order will be followed in optimizer.
              If `order_params` in the keys, other keys will be ignored and the element of 'order_params' must be in
              one group of `params`.

        learning_rate (Union[float, int, Tensor, Iterable, LearningRateSchedule]): Default: ``1e-3`` .

            - float: The fixed learning rate value. Must be equal to or greater than 0.

            - int: The fixed learning rate value. Must be equal to or greater than 0. It will be converted to float.

            - Tensor: Its value should be a scalar or a 1-D vector. For scalar, fixed learning rate will be applied.
              For vector, learning rate is dynamic, then the i-th step will take the i-th value as the learning rate.

            - Iterable: Learning rate is dynamic. The i-th step will take the i-th value as the learning rate.

            - LearningRateSchedule: Learning rate is dynamic. During training, the optimizer calls the instance of
              LearningRateSchedule with step as the input to get the learning rate of current step.

        beta1 (float): The exponential decay rate for the 1st moment estimations. Should be in range (0.0, 1.0).
            Default: ``0.9`` .
        beta2 (float): The exponential decay rate for the 2nd moment estimations. Should be in range (0.0, 1.0).
            Default: ``0.999`` .
        eps (float): Term added to the denominator to improve numerical stability. Should be greater than 0.
            Default: ``1e-8`` .
        use_locking (bool): Whether to enable a lock to protect the updating process of variable tensors.
            If ``True`` , the host update of one parameter's `m` and `v` (and the delta computed from them) is
            mutually exclusive with any other update of the same state in this process, so concurrent steps
            give the serial result for each parameter. If ``False`` , concurrent updates of the same state are
            not ordered and the result is unpredictable. Default: ``False`` .
        use_nesterov (bool): Whether to use Nesterov Accelerated Gradient (NAG) algorithm to update the gradients.
            If ``True`` , update the gradients using NAG.
            If ``False`` , update the gradients without using NAG. Default: ``False`` .
        weight_decay (Union[float, int, Cell]): Weight decay (L2 penalty). Default: ``0.0`` .

            - float: The fixed weight decay value. Must be equal to or greater than 0.

            - int: The fixed weight decay value. Must be equal to or greater than 0. It will be converted to float.

            - Cell: Weight decay is dynamic. During training, the optimizer calls the instance of
              the Cell with step as the input to get the weight decay value of current step.

        loss_scale (float): A floating point value for the loss scale. Should be greater than 0. In general, use the
            default value. Only when `FixedLossScaleManager` is used for training and the `drop_overflow_update` in
            `FixedLossScaleManager` is set to ``False`` , then this value needs to be the same as the `loss_scale` in
            `FixedLossScaleManager`. Refer to class :class:`mindspore.amp.FixedLossScaleManager` for more details.
            Default: ``1.0`` .

    Inputs:
        - **gradients** (tuple[Tensor]) - The gradients of `params`, the shape is the same as `params`.

    Outputs:
        Tensor[bool], the value is ``True`` . (As `nn.AdamOffload` in MindSpore 2.10 does, a direct call returns
        one ``True`` per parameter, as a tuple.)

    Raises:
        TypeError: If `learning_rate` is not one of int, float, Tensor, Iterable, LearningRateSchedule.
        TypeError: If element of `parameters` is neither Parameter nor dict.
        TypeError: If `beta1`, `beta2`, `eps` or `loss_scale` is not a float.
        TypeError: If `weight_decay` is neither float nor int.
        TypeError: If `use_locking` or `use_nesterov` is not a bool.
        TypeError: If a parameter is not float32.
        TypeError: If `MS_CUSTOM_AOT_WHITE_LIST` is set to a folder that does not hold the kernel library.
        ValueError: If `loss_scale` or `eps` is less than or equal to 0.
        ValueError: If `beta1`, `beta2` is not in range (0.0, 1.0).
        ValueError: If `weight_decay` is less than 0.

    Supported Platforms:
        ``Ascend`` ``GPU`` ``CPU``

    Examples:
        >>> import mindspore as ms
        >>> from mindspore import nn
        >>> from mindspore_offload import AdamOffload
        >>>
        >>> # Define the network structure of LeNet5. Refer to
        >>> # https://atomgit.com/mindspore/docs/blob/master/docs/mindspore/code/lenet.py
        >>> net = LeNet5()
        >>> #1) All parameters use the same learning rate and weight decay
        >>> optim = AdamOffload(params=net.trainable_params())
        >>>
        >>> #2) Use parameter groups and set different values
        >>> conv_params = list(filter(lambda x: 'conv' in x.name, net.trainable_params()))
        >>> no_conv_params = list(filter(lambda x: 'conv' not in x.name, net.trainable_params()))
        >>> group_params = [{'params': conv_params, 'weight_decay': 0.01},
        ...                 {'params': no_conv_params, 'lr': 0.01},
        ...                 {'order_params': net.trainable_params()}]
        >>> optim = AdamOffload(group_params, learning_rate=0.1, weight_decay=0.0)
        >>> # The conv_params's parameters will use default learning rate of 0.1 and weight decay of 0.01.
        >>> # The no_conv_params's parameters will use learning rate of 0.01 and default weight decay of 0.0.
        >>> # The final parameters order in which the optimizer will be followed is the value of 'order_params'.
        >>>
        >>> loss = nn.SoftmaxCrossEntropyWithLogits()
        >>> model = ms.Model(net, loss_fn=loss, optimizer=optim)
    """

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, use_locking=False,
                 use_nesterov=False, weight_decay=0.0, loss_scale=1.0):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        name = self.cls_name
        check.check_type("beta1", beta1, [float], name)
        check.check_type("beta2", beta2, [float], name)
        check.check_type("eps", eps, [float], name)
        check.check_open_unit_interval("beta1", beta1, name)
        check.check_open_unit_interval("beta2", beta2, name)
        check.check_positive("eps", eps, name)
        check.check_float32_hyperparameters(self, name)
        check.check_type("use_locking", use_locking, [bool], name)
        check.check_type("use_nesterov", use_nesterov, [bool], name)
        check.check_float32_parameters(self._parameters, name)
        library = kernel.library_path()
        check.check_white_list(library, name)

        self.use_locking = use_locking
        self.use_nesterov = use_nesterov
        self.params = self.parameters
        self.beta1 = Tensor(beta1, mstype.float32)
        self.beta2 = Tensor(beta2, mstype.float32)
        self.beta1_power = Parameter(initializer(1, [1], mstype.float32), name="beta1_power")
        self.beta2_power = Parameter(initializer(1, [1], mstype.float32), name="beta2_power")
        self.eps = Tensor(eps, mstype.float32)
        self.moment1 = self._parameters.clone(prefix="moment1", init="zeros")
        self.moment2 = self._parameters.clone(prefix="moment2", init="zeros")
        self.apply_on_host = _parameters_on_host()
        self._step = _adam_apply if self.apply_on_host else _adam_offload
        # The op writes these in place: views get storage of their own now and at every compile.
        written = (*self._parameters, *self.moment1, *self.moment2)
        _contiguous.make_contiguous(written)
        guard = _contiguous.CompileGuard(written, len(self._parameters))
        self.opt = ops.Custom(f"{library}:{_entry_point(self.apply_on_host, use_nesterov, use_locking)}",
                              out_shape=lambda *shapes: guard() or _infer_shape(shapes, name, self.apply_on_host),
                              out_dtype=lambda *dtypes: _infer_dtype(dtypes, name, self.apply_on_host),
                              func_type="aot")
        # The moments live where this op runs: on the host, whatever the network's device.
        self.opt.set_device("CPU")
        # It writes moment1 and moment2 (and with apply_on_host the parameter) in place, as AdamNoUpdateParam
        # does: tell the graph, so later reads and saves are ordered after it and it is never merged or dropped.
        self.opt.add_prim_attr("side_effect_mem", True)

    @jit(backend="ms_backend")
    def construct(self, gradients):
        params = self._parameters
        moment1 = self.moment1
        moment2 = self.moment2
        gradients = self.decay_weight(gradients)
        gradients = self.scale_grad(gradients)
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)

        beta1_power = self.beta1_power * self.beta1
        self.beta1_power = beta1_power
        beta2_power = self.beta2_power * self.beta2
        self.beta2_power = beta2_power
        if self.is_group_lr:
            success = self.map_reverse(F.partial(self._step, self.opt, beta1_power, beta2_power,
                                                 self.beta1, self.beta2, self.eps),
                                       lr, gradients, params, moment1, moment2)
        else:
            success = self.map_reverse(F.partial(self._step, self.opt, beta1_power, beta2_power,
                                                 self.beta1, self.beta2, self.eps, lr),
                                       gradients, params, moment1, moment2)
        return success


def _infer_shape(shapes, cls_name, apply):
    """The delta has the gradient's shape; the apply op returns one float."""
    check.check_gradient_shapes(shapes[1:] if apply else shapes, cls_name)
    return [1] if apply else shapes[-1]


def _infer_dtype(dtypes, cls_name, apply):
    check.check_gradient_dtypes(dtypes[1:] if apply else dtypes, cls_name)
    return dtypes[-1]

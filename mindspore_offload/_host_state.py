"""What AdamOffload and AdamWeightDecayOffload share: their host state and how each parameter reaches it.

An optimizer of this package keeps, per parameter, two float32 moments (and a float32 master for a
16-bit parameter) in host memory, and updates them with one custom op a parameter (or a bucket), picked from
``_steps.STEP_KINDS`` by the parameter's kind and the optimizer's update rule. ``HostStateOptimizer``
builds that state, the kinds, the ops and their graph functions once (``_build_host_state``); the
subclass brings its hyper-parameters, its checkpoint names and its ``construct``.
"""
import time

import mindspore as ms
from mindspore.nn.optim.optimizer import Optimizer
from mindspore.ops import functional as F

from mindspore_offload import _contiguous, _env, _masters, _sharding, _steps
from mindspore_offload import kernel


def _parameters_in_host_memory():
    """On the CPU backend the parameters already sit in host memory beside the moments.
    MINDSPORE_OFFLOAD_HOST_APPLY=0 keeps the device kinds there too (tests and benchmarks)."""
    if not _env.host_apply():
        return False
    current = getattr(ms, "get_current_device", None)
    target = current()[0] if current is not None else ms.get_context("device_target")
    return str(target).upper() == "CPU"



class HostStateOptimizer(Optimizer):
    """The base of the package's optimizers (not public): see the module docstring."""

    def _build_host_state(self, rule, moment_prefixes, shard_state, use_locking, use_nesterov,
                          rounding=_steps.ROUNDINGS[0]):
        """The moments (named ``<prefix>.<parameter name>``), the masters, the step kinds of ``rule``, and the
        host op and graph function of every parameter; ``rounding`` picks AdamW's formula (_steps.ROUNDINGS).
        The subclass has checked its arguments."""
        name = self.cls_name
        self.rule = rule
        # shard: a _sharding.Layout when this rank keeps only slices of the large moments, else None.
        self.shard = _sharding.layout(shard_state, name)
        self.moment1, self.moment2 = _sharding.moments(self._parameters, self.shard, moment_prefixes)
        if self.shard is not None:  # saved as "shard_layout", so a checkpoint says whose slices it holds
            self.shard_layout = _sharding.layout_parameter(self.shard)

        self.apply_on_host = _parameters_in_host_memory()
        with_master = tuple(_masters.has_master(param) for param in self._parameters)
        if any(with_master):
            _masters.check_master_names(self._parameters, name)
            _masters.check_assignable(self._parameters, self.apply_on_host, name)
        # float32 moments and a float32 master for each 16-bit parameter (this rank's slices, if sharded); a
        # float32 parameter's master slot holds its first moment, never read.
        self.moment1, self.moment2, self.masters = _masters.host_state(self._parameters, self.moment1, self.moment2,
                                                                       self.shard)
        self.step_kinds = tuple(_steps.choose(master, _sharding.is_sliced(param, self.shard), self.apply_on_host,
                                              rule)
                                for param, master in zip(self._parameters, with_master))
        kinds = [_steps.STEP_KINDS[kind] for kind in self.step_kinds]
        variants = self._host_op_variants(kinds)

        # Consecutive parameters of a kind with a bucket entry that share a learning rate are updated by one op
        # a bucket (_steps.buckets); the subclass's construct calls them after its map (_bucket_updates). A
        # learning rate is known by its object: MindSpore's Optimizer builds one for each group with an "lr" and
        # gives every other group the optimizer's (it keeps no group index a parameter), and a bucket's op takes
        # its first parameter's. With one learning rate a run crosses groups (their decays are the op's inputs).
        lr_keys = tuple(map(id, self.group_lr)) if self.is_group_lr else (None,) * self.param_length
        self.buckets = _steps.buckets(self.step_kinds, lr_keys)
        in_bucket = {index for start, stop in self.buckets for index in range(start, stop)}

        # The host ops write these in place: views get storage of their own now and at every compile.
        written = (*self._parameters, *self.moment1, *self.moment2)
        _contiguous.make_contiguous(written)
        guard = _contiguous.CompileGuard(written, self.param_length - len(in_bucket) + len(self.buckets))
        # Everything the step writes, its counters and masters included (see __call__).
        self._storage = _contiguous.StorageWatch(self.get_parameters())
        library = kernel.library_path()
        self.bucket_ops = tuple(_steps.bucket_op(kinds[start], self._parameters[start:stop], library, name, guard,
                                                 use_nesterov=use_nesterov, use_locking=use_locking,
                                                 rounding=rounding)
                                for start, stop in self.buckets)
        # Parallel to the parameters: parameter i is updated by graph_functions[i] through host_ops[i] (one in a
        # bucket by its bucket's op: its function does nothing, and its host op is a stand-in never called).
        functions = _steps.graph_functions(self.shard, library)
        self.graph_functions = tuple(_steps.in_bucket if index in in_bucket else functions[kind]
                                     for index, kind in enumerate(self.step_kinds))
        self.host_ops = tuple(self.bucket_ops[0] if index in in_bucket else
                              _steps.host_op(kind, param, library, name, guard, use_nesterov=use_nesterov,
                                             use_locking=use_locking, decay=decay, unscale=unscale,
                                             rounding=rounding)
                              for index, (kind, param, (decay, unscale)) in enumerate(zip(kinds, self._parameters,
                                                                                          variants)))

    def _bucket_updates(self, before_lr, lrs, after_lr, columns):
        """Calls every bucket's op, in its rule's layout (_steps.BUCKET_LAYOUTS): the shared scalars
        (``before_lr``, the bucket's learning rate from ``lrs``, ``after_lr``), then the bucket's run of each
        of ``columns`` (tuples parallel to the parameters). Returns the ops' outputs for construct to depend
        on: when this method returned its own ``F.depend`` on them instead, MindSpore 2.10 dropped the ops
        (tried in GRAPH_MODE: the parameters never moved)."""
        outputs = ()
        for op, (start, stop) in zip(self.bucket_ops, self.buckets):
            tensors = ()
            for column in columns:
                tensors = tensors + column[start:stop]
            outputs = outputs + (op(*before_lr, lrs[start], *after_lr, *tensors),)
        return outputs

    def _for_each_parameter(self, value):
        """(value,) * param_length, built by a map over the parameters: the compiler unrolls a repeated tuple
        one call deep per element and stops at a depth of 1000 (about 600 parameters)."""
        return self.map_(F.partial(_steps.same_value, value), self._parameters)

    def _host_op_variants(self, kinds):
        """Per parameter, (decay, unscale): the master kinds' op variants (_steps.host_op). None by default."""
        return tuple((False, False) for _ in kinds)

    def __call__(self, *args, **kwargs):
        # PYNATIVE_MODE: a compiled step keeps the storage its Parameters had when it was compiled, and a
        # set_data since (a checkpoint loaded, pretrained weights) gives them new storage. Compiled again,
        # the step updates the new storage; otherwise every update would be lost without a word. A new
        # creation time is what makes MindSpore's jit compile this Cell's construct again.
        if ms.get_context("mode") == ms.PYNATIVE_MODE and self._storage.moved():
            object.__setattr__(self, "_create_time", time.time_ns())
        return super().__call__(*args, **kwargs)

    def master_names(self):
        """{master name: parameter name} for each 16-bit parameter's float32 master (``master.<name>``)."""
        return {master.name: param.name for param, master, kind in zip(self._parameters, self.masters,
                                                                      self.step_kinds)
                if _steps.STEP_KINDS[kind].master}

    def sliced_state(self):
        """{state name: (the parameter's shape, rank, ranks)} for each moment and master of which this rank
        keeps a slice (``shard_state=True``); empty when nothing is sliced."""
        out = {}
        for param, moment1, moment2, master, kind in zip(self._parameters, self.moment1, self.moment2,
                                                         self.masters, self.step_kinds):
            row = _steps.STEP_KINDS[kind]
            if row.sliced:
                for state in (moment1, moment2) + ((master,) if row.master else ()):
                    out[state.name] = (tuple(param.shape), self.shard.rank, self.shard.ranks)
        return out

    def memory_report(self):
        """Bytes of this optimizer's parameters on the device and on the host, and the bytes that cross
        between them each step, by parameter dtype and in total (docs/design.md#mixed-precision). The CPU
        backend cannot show device memory, so this is the accounting of the layout, per element:

        ========  ======  ====  ==============  =========================================
        dtype     device  host  across a step   what
        ========  ======  ====  ==============  =========================================
        float32   12      8     8               param, grad, delta | m, v
        (AdamW)   12      8     12              param, grad, new param | m, v (param crosses down too)
        float16   6       12    6               param, grad, new param | master, m, v
        bfloat16  6       12    6               as float16
        ========  ======  ====  ==============  =========================================

        With ``shard_state=True`` the figures are this rank's: a sliced parameter keeps only its
        ``ceil(size / N)`` slice on the host, and only that slice's gradient and result cross
        (``sharded_elements`` counts the sliced parameters' elements).

        Returns:
            dict, ``{"by_dtype": {dtype: {"elements", "sharded_elements", "device_bytes", "host_bytes",
            "bytes_across_per_step", "per_element"}}, "total": {...}}``.
        """
        return _masters.memory_report(self._parameters, self.shard, self.rule)

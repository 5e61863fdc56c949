"""MindSpore's own ops.AdamNoUpdateParam, called so that it runs each tensor as one thread task.

MindSpore 2.10 keeps one CPU kernel per shape (PyNative) or per graph node, and that kernel times its
own thread splits (ParallelLaunchAutoSearch): launches 0-4 run as one task, launches 5-9 and 10-14 as
min(2, K) and min(4, K) tasks (K: MindSpore's kernel threads), and later ones as whichever split was
fastest. Each split adds leftover elements at its task edges, which MindSpore rounds its scalar way.
So a bit-for-bit comparison uses a kernel no more than five times: `adam_no_update_param` below moves
on to a shape of the same size that no kernel has seen yet (a rank of 3 to 8, unusual in other tests).
"""
import numpy as np

UNSPLIT_LAUNCHES = 5  # MindSpore's first search round: one task, whatever the size


def _shapes(n):
    for rank in range(3, 9):
        for at in range(rank):
            yield (1,) * at + (n,) + (1,) * (rank - 1 - at)


_state = {}  # n -> [iterator over unused shapes of n elements, current shape, its launches so far]


def _shape_for(n, launches):
    """A shape of n elements whose kernel can take `launches` more launches within its first five."""
    state = _state.setdefault(n, [_shapes(n), None, UNSPLIT_LAUNCHES])
    if state[2] + launches > UNSPLIT_LAUNCHES:
        state[1] = next(state[0], None)
        state[2] = 0
        if state[1] is None:
            raise RuntimeError(f"no unused shape of {n} elements left; the test launches too often")
    state[2] += launches
    return state[1]


def unused_shape(n):
    """A shape of n elements that no kernel of this process has run, now the caller's: for training
    through nn.AdamOffload, whose first five launches of each parameter's kernel are single tasks."""
    return _shape_for(n, UNSPLIT_LAUNCHES)


def adam_no_update_param(m, v, g, *, beta1_power, beta2_power, lr, beta1, beta2, eps, use_nesterov,
                         shape=None):
    """One MindSpore step on copies: (m, v, delta) as flat float32 arrays. With shape=None the launch is
    one of the first five of its kernel (a single task); pass a shape to choose the kernel yourself."""
    import mindspore as ms
    from mindspore import Parameter, Tensor

    shape = _shape_for(m.size, 1) if shape is None else shape
    op = ms.ops.AdamNoUpdateParam(use_nesterov=use_nesterov)
    mp = Parameter(Tensor(np.array(m, np.float32).reshape(shape)), name="m")
    vp = Parameter(Tensor(np.array(v, np.float32).reshape(shape)), name="v")
    scalar = lambda x: Tensor(np.array([x], np.float32))  # noqa: E731
    d = op(mp, vp, scalar(beta1_power), scalar(beta2_power), scalar(lr), scalar(beta1), scalar(beta2),
           scalar(eps), Tensor(np.array(g, np.float32).reshape(shape))).asnumpy()
    return mp.asnumpy().ravel(), vp.asnumpy().ravel(), d.ravel()


def bits(x):
    return np.asarray(x, np.float32).view(np.uint32)

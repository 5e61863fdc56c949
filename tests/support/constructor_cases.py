"""The rows of the optimizers' error tables (tests/optimizer/test_errors.py, test_adamw_errors.py): how a
row builds a constructor's arguments from fresh parameters, and what a constructor raises for them."""
from mindspore import nn


def net_params():
    net = nn.Dense(3, 2)
    return net.trainable_params()


def params(build):
    """build(P) -> (params, kwargs) for fresh parameters P = [weight, bias]."""
    return lambda: build(net_params())


def kw(**kwargs):
    return params(lambda p: (p, kwargs))


def raised(cls, build):
    """The exception `cls(*build())` raises, or None."""
    args, kwargs = build()
    try:
        cls(args, **kwargs)
    except Exception as e:  # noqa: BLE001 - the type is what is compared
        return e
    return None

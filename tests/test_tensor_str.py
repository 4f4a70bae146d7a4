"""Tensors print as PyTorch prints them (fastnn/_tensor_str.py): the expected strings below were
recorded from PyTorch 2.13, and where PyTorch is installed the same expressions are compared live
against it, seeded random tensors and print options included."""
import pytest

import fastnn as F

RECORDED = [
    ('F.tensor([1., 2., 3.])',
     'tensor([1., 2., 3.])'),
    ('F.tensor([1e-5, 1.])',
     'tensor([1.0000e-05, 1.0000e+00])'),
    ('F.tensor(0.5)',
     'tensor(0.5000)'),
    ('F.tensor(3.)',
     'tensor(3.)'),
    ('F.tensor([True, False])',
     'tensor([ True, False])'),
    ('F.arange(2000)',
     'tensor([   0,    1,    2,  ..., 1997, 1998, 1999])'),
    ('F.zeros(0, 3)',
     'tensor([], size=(0, 3))'),
    ('F.zeros(0, dtype=F.int64)',
     'tensor([], dtype=torch.int64)'),
    ("F.tensor([float('nan'), 1.])",
     'tensor([nan, 1.])'),
    ('F.tensor([-1., 2.5, 1e-3], dtype=F.float64)',
     'tensor([-1.0000e+00,  2.5000e+00,  1.0000e-03], dtype=torch.float64)'),
    ('F.arange(24.).reshape(2, 3, 4)',
     'tensor([[[ 0.,  1.,  2.,  3.],\n         [ 4.,  5.,  6.,  7.],\n         [ 8.,  9., 10., 11.]],\n\n        [[12., 13., 14., 15.],\n         [16., 17., 18., 19.],\n         [20., 21., 22., 23.]]])'),
    ('F.arange(30.) / 7',
     'tensor([0.0000, 0.1429, 0.2857, 0.4286, 0.5714, 0.7143, 0.8571, 1.0000, 1.1429,\n        1.2857, 1.4286, 1.5714, 1.7143, 1.8571, 2.0000, 2.1429, 2.2857, 2.4286,\n        2.5714, 2.7143, 2.8571, 3.0000, 3.1429, 3.2857, 3.4286, 3.5714, 3.7143,\n        3.8571, 4.0000, 4.1429])'),
    ('F.ones(2, requires_grad=True) * 2',
     'tensor([2., 2.], grad_fn=<MulBackward0>)'),
    ('F.tensor([[1, -20], [300, 4]])',
     'tensor([[  1, -20],\n        [300,   4]])'),
    ('F.arange(1200.).reshape(400, 3)',
     'tensor([[0.0000e+00, 1.0000e+00, 2.0000e+00],\n        [3.0000e+00, 4.0000e+00, 5.0000e+00],\n        [6.0000e+00, 7.0000e+00, 8.0000e+00],\n        ...,\n        [1.1910e+03, 1.1920e+03, 1.1930e+03],\n        [1.1940e+03, 1.1950e+03, 1.1960e+03],\n        [1.1970e+03, 1.1980e+03, 1.1990e+03]])'),
]


@pytest.mark.parametrize("expr,expected", RECORDED, ids=[e for e, _ in RECORDED])
def test_repr_is_pytorchs(expr, expected):
    assert repr(eval(expr)) == expected
    assert str(eval(expr)) == expected


def test_parameter_and_summarized_3d():
    w = F.nn.Parameter(F.tensor([[0.5, -1.0]]))
    assert repr(w) == "Parameter containing:\ntensor([[ 0.5000, -1.0000]], requires_grad=True)"
    text = repr(F.zeros(10, 10, 20))
    # 6 matrices shown (3 at each end of dim 0), each with 6 summarized rows and one "..." row,
    # and one "..." between the two halves of dim 0
    assert text.count("...") == 6 * (6 + 1) + 1
    assert text.startswith("tensor([[[0., 0., 0.,  ..., 0., 0., 0.],")


def test_print_options_round_trip():
    try:
        F.set_printoptions(precision=2)
        assert repr(F.tensor([1 / 3])) == "tensor([0.33])"
        F.set_printoptions(sci_mode=True)     # precision stays 2; sci forced
        assert repr(F.tensor([1 / 3])) == "tensor([3.33e-01])"
        F.set_printoptions(linewidth=20)      # each call resets sci_mode to None, as PyTorch
        assert repr(F.arange(6.)) == "tensor([0., 1., 2.,\n        3., 4., 5.])"
        assert repr(F.tensor([1 / 3])) == "tensor([0.33])"
    finally:
        F.set_printoptions(profile="default")
    assert repr(F.tensor([1 / 3])) == "tensor([0.3333])"
    with pytest.raises(ValueError, match="profile"):
        F.set_printoptions(profile="huge")
    with pytest.raises(ValueError, match="precision"):
        F.set_printoptions(precision=-1)


LIVE = [
    "x.randn(3)", "x.randn(2, 3, 4)", "x.tensor([1., 200000., 3.])", "x.tensor([1e9, 1.])",
    "x.tensor(3)", "x.tensor(True)", "x.arange(10)", "x.randn(2000)", "x.randn(50, 50)",
    "x.randn(40)", "x.zeros(3)", "x.zeros(0)", "x.tensor([float('inf'), 0.])",
    "x.tensor([1.5, float('nan')])", "x.randn(3, dtype=x.float64)",
    "x.randn(3, requires_grad=True)", "x.tensor([123456.789, 0.001])", "x.randn(3, 4, 5, 6)",
    "x.randn(20, 30) * 1000", "x.tensor([1e-4, 0.5])", "x.tensor([-0.0, 0.0])",
    "x.randn(1200, 3)", "x.randn(8, 200)", "x.tensor([], dtype=x.float64)",
    "x.ones(2, 3, requires_grad=True).mean()", "x.tensor([1, 2], dtype=x.int32)",
    "x.tensor([2. ** 60, 1.])", "x.tensor(1e-8)", "x.tensor(-7.25)",
]
OPTIONS = [{}, {"precision": 2}, {"sci_mode": True}, {"sci_mode": False}, {"profile": "short"},
           {"linewidth": 40}, {"edgeitems": 1, "threshold": 5}]


@pytest.mark.parametrize("opts", OPTIONS, ids=[str(o) for o in OPTIONS])
def test_repr_matches_pytorch_live(opts):
    torch = pytest.importorskip("torch")
    for expr in LIVE:
        got = []
        for x in (torch, F):
            x.set_printoptions(**opts)
            try:
                x.manual_seed(0)
                got.append(repr(eval(expr)))
            finally:
                x.set_printoptions(profile="default")
        assert got[1] == got[0], expr

"""The public kernel API on plain numpy arrays, dispatched to the current backend.

Each function validates its inputs once, here in Python (shapes, dtypes, index ranges), makes
them C-contiguous, and calls the backend's kernel of the same name. Compiled code can then trust
its inputs. Every function takes `backend=` to name a backend for one call.

    >>> import numpy as np, fastnn
    >>> a = np.ones((2, 3), np.float32); b = np.ones((3, 4), np.float32)
    >>> fastnn.kernels.matmul(a, b).shape
    (2, 4)

Where things are:
    registry.py    the declarations' form; REGISTRY, the one list of kernels
    families/      each kernel's declaration and checked public function, by family
    trusted.py     the internal entry point for Tensor ops and optimizers
    dispatch.py    backends: which load here, which is current (set_backend, use_backend)
Each kernel's numpy reference is fastnn/backends/numpy/*.py's function of the same name.
"""
from .dispatch import (Backend, available_backends, get_backend, load, resolve, set_backend,
                       unavailable_reasons, use_backend)
from .registry import REGISTRY, declare, names
from .families.gemm import bmm, gemm, gemm_bias_grad, gemm_fused, matmul
from .families.elementwise import (bias_add, bias_grad, clamp, clamp_backward, gelu,
                                   gelu_backward, leaky_relu, leaky_relu_backward, relu,
                                   relu_backward, sigmoid, sigmoid_backward, tanh, tanh_backward)
from .families.rows import (cross_entropy, layer_norm, layer_norm_backward, log_softmax,
                            log_softmax_backward, mse_loss, softmax, softmax_backward)
from .families.embedding import embedding, embedding_backward
from .families.optim import adam_multi_step, adam_step, sgd_step
from .families.attention import attention, attention_backward
from .families.pool import (adaptive_avg_pool2d, adaptive_avg_pool2d_backward, avg_pool2d,
                            avg_pool2d_backward, max_pool2d, max_pool2d_backward)
from .families.norm2d import (batch_norm, batch_norm_backward, group_norm,
                              group_norm_backward)
from .families.conv import conv2d, conv2d_backward, conv_transpose2d, conv_transpose2d_backward
from .families.select import multinomial, topk
from . import trusted  # noqa: E402  (after the families: it collects their entry points)

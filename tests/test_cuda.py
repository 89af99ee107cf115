"""GPU checks: run where CUDA is available (the device machine), skipped elsewhere with the reason."""

import pytest
import torch

from landscape.jitter import JitterConfig
from landscape.models import ModelConfig, RegularizerConfig, build_model
from landscape.physics import Deconvolution, Denoising, SingleCoilMRI, adjointness_gap

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")

OPS = [
    (lambda: Denoising(0.1), (1, 64)),
    (lambda: Deconvolution(noise_sigma=0.01), (1, 64, 16)),
    (lambda: SingleCoilMRI((64, 64), noise_sigma=0.01), (2, 64, 64)),
]


@pytest.mark.parametrize("i", range(len(OPS)))
def test_physics_on_cuda_matches_cpu(i):
    make, shape = OPS[i]
    op_cpu, op_gpu = make(), make().cuda()
    x = torch.randn(4, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(i))
    xg = x.cuda()
    assert adjointness_gap(op_gpu, xg) < 1e-12
    assert torch.allclose(op_gpu.forward(xg).cpu(), op_cpu.forward(x), atol=1e-12)
    y = op_cpu.forward(x)
    assert torch.allclose(op_gpu.adjoint(y.cuda()).cpu(), op_cpu.adjoint(y), atol=1e-12)
    # noise drawn from a CPU generator is the same on either device
    ym = op_gpu.measure(xg, generator=torch.Generator().manual_seed(3)).cpu()
    assert torch.allclose(ym, op_cpu.measure(x, generator=torch.Generator().manual_seed(3)), atol=1e-12)


@pytest.mark.parametrize("i", range(len(OPS)))
def test_model_on_cuda_matches_cpu_and_jitter_is_seeded(i):
    make, shape = OPS[i]
    cfg = ModelConfig(
        signal_shape=shape,
        n_iter=5,
        regularizer=RegularizerConfig(kind="cnn", width=16, depth=2, kernel_size=3),
    )
    torch.manual_seed(0)
    m_cpu = build_model(cfg, make()).double().eval()
    m_gpu = build_model(cfg, make()).double()
    m_gpu.load_state_dict(m_cpu.state_dict())
    m_gpu = m_gpu.cuda().eval()
    x = torch.randn(3, *shape, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = m_cpu.physics.measure(x, generator=torch.Generator().manual_seed(2))
    out_cpu, out_gpu = m_cpu(y), m_gpu(y.cuda()).cpu()
    assert torch.allclose(out_gpu, out_cpu, atol=1e-10)
    traj = m_gpu(y.cuda(), return_iterates=True)
    assert torch.equal(m_gpu.tail(traj.iterates[2], y.cuda(), 2), traj.output)
    m_gpu.train()
    a = m_gpu.set_generator(torch.Generator("cuda").manual_seed(5))(y.cuda(), jitter=JitterConfig(0.1))
    b = m_gpu.set_generator(torch.Generator("cuda").manual_seed(5))(y.cuda(), jitter=JitterConfig(0.1))
    assert torch.equal(a, b) and not torch.allclose(a, traj.output)
    with pytest.raises(ValueError, match="device"):
        m_gpu(y)  # CPU input to a CUDA model


@pytest.mark.parametrize("backend", ["double_backward", "jvp_grad", "linearize"])
def test_iterate_hvp_on_cuda_matches_cpu(backend):
    from landscape.curvature.operators import make_iterate_hvp

    cfg = ModelConfig(
        signal_shape=(1, 32, 8),
        n_iter=4,
        regularizer=RegularizerConfig(kind="cnn", width=8, depth=2, kernel_size=3),
    )
    torch.manual_seed(0)
    m_cpu = build_model(cfg, Deconvolution(noise_sigma=0.01)).double().eval()
    m_gpu = build_model(cfg, Deconvolution(noise_sigma=0.01)).double()
    m_gpu.load_state_dict(m_cpu.state_dict())
    m_gpu = m_gpu.cuda().eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 1, 32, 8, dtype=torch.float64, generator=g)
    y = m_cpu.physics.measure(x, generator=g)
    v = torch.randn(256, dtype=torch.float64, generator=g)
    h_cpu = make_iterate_hvp(m_cpu, y[0], x[0], 1, backend=backend)
    h_gpu = make_iterate_hvp(m_gpu, y[0].cuda(), x[0].cuda(), 1, backend=backend)
    assert torch.allclose(h_gpu.matvec(v.cuda()).cpu(), h_cpu.matvec(v), rtol=1e-9, atol=1e-12)

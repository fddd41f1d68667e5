"""The engine ceiling: one dense 1x1 convolution (MobileNet's pointwise layer at 28x28, 384 -> 384 channels,
batch 8), PyTorch CPU with 2 threads. Usage: /usr/bin/python3 bench/peers/peer_pointwise.py [threads] -> JSON."""
import json, sys, time, torch
torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
x = torch.randn(8, 384, 28, 28)
conv = torch.nn.Conv2d(384, 384, 1, bias=False).eval()
with torch.no_grad():
    for _ in range(3): conv(x)
    ts = []
    for _ in range(20):
        t0 = time.perf_counter(); conv(x); ts.append(time.perf_counter() - t0)
ms = sorted(ts)[len(ts) // 2] * 1000
print(json.dumps({'ms': ms, 'gflops': 2 * 8 * 28 * 28 * 384 * 384 / ms / 1e6}))

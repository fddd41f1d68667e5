"""Feature-visualisation step at batch B (the ../shared/peers script times batch 1 only).
Same network and step as ../shared/peers/peer_torch_cpu.py (MobileNet v1 0.75, random weights, Adam on raw
pixels, objective = mean of one channel of block 12 ~ conv_pw_11), one objective per image in the batch.
With a 4th argument `lucid`: lucid's parameterisation and the article's transforms as lucent (lucid's PyTorch port)
does them: a Fourier-parameterised image (torch.fft.irfft2, 1/f scaling), colour decorrelation (lucid's
color_correlation_svd_sqrt), sigmoid; then pad 2, jitter 4 x2, jitter 8 x3, random scale (0.95-1.1, bilinear),
random rotation (+-20 deg, affine_grid + grid_sample, as kornia does it), jitter 2, centre crop/pad back to SIZE.
Usage: /usr/bin/python3 bench/peers/peer_featvis.py SIZE BATCH [threads] [lucid] -> JSON on stdout."""
import json, math, random, sys, time, torch, torch.nn as nn, torch.nn.functional as F
size, batch = int(sys.argv[1]), int(sys.argv[2])
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
torch.manual_seed(0)

def mobilenet_v1(alpha=0.75, n=1000):
    c = lambda x: int(x * alpha)
    def dw(i, o, s):
        return nn.Sequential(nn.Conv2d(i, i, 3, s, 1, groups=i, bias=False), nn.BatchNorm2d(i), nn.ReLU6(),
                             nn.Conv2d(i, o, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU6())
    cfg = [(32, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2)] + \
          [(512, 512, 1)] * 5 + [(512, 1024, 2), (1024, 1024, 1)]
    layers = [nn.Sequential(nn.Conv2d(3, c(32), 3, 2, 1, bias=False), nn.BatchNorm2d(c(32)), nn.ReLU6())]
    layers += [dw(c(i), c(o), s) for i, o, s in cfg]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c(1024), n)).eval()

m = mobilenet_v1()
feats = {}
m[12].register_forward_hook(lambda mod, i, o: feats.__setitem__('h', o))
lucid = len(sys.argv) > 4 and sys.argv[4] == 'lucid'
random.seed(0)
if lucid:
    fy = torch.fft.fftfreq(size)[:, None]
    fx = torch.fft.rfftfreq(size)[None, :]
    scale = 1.0 / torch.maximum(torch.sqrt(fx * fx + fy * fy), torch.tensor(1.0 / size))
    spectrum = (0.01 * torch.randn(batch, 3, size, size // 2 + 1, 2)).requires_grad_(True)
    corr = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
    corr = corr / corr.norm(dim=0).max()
    params = [spectrum]
    def image():
        x = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(size, size), norm='ortho') / 4
        x = torch.einsum('bchw,dc->bdhw', x, corr)
        return torch.sigmoid(x)
    def jitter(x, d):
        oy, ox = random.randint(0, d), random.randint(0, d)
        return x[:, :, oy:x.shape[2] - d + oy, ox:x.shape[3] - d + ox]
    def transform(x):
        x = F.pad(x, (2, 2, 2, 2), value=0.5)
        for d in (4, 4, 8, 8, 8):
            x = jitter(x, d)
        s = random.choice([0.95 + 0.025 * i for i in range(7)])
        h = x.shape[2]
        x = F.interpolate(x, scale_factor=s, mode='bilinear', align_corners=False)
        x = F.pad(x, [(h - x.shape[2]) // 2, h - x.shape[2] - (h - x.shape[2]) // 2] * 2, value=0.5) if x.shape[2] < h else x[:, :, (x.shape[2] - h) // 2:(x.shape[2] - h) // 2 + h, (x.shape[3] - h) // 2:(x.shape[3] - h) // 2 + h]
        t = math.radians(random.randint(-20, 20))
        theta = torch.tensor([[math.cos(t), -math.sin(t), 0.0], [math.sin(t), math.cos(t), 0.0]]).expand(x.shape[0], 2, 3)
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        x = F.grid_sample(x - 0.5, grid, mode='bilinear', padding_mode='zeros', align_corners=False) + 0.5
        x = jitter(x, 2)
        p = size - x.shape[2]
        return F.pad(x, (p // 2, p - p // 2, p // 2, p - p // 2), value=0.5)
else:
    img = torch.randn(batch, 3, size, size, requires_grad=True)
    params = [img]
    image = lambda: img
    transform = lambda x: x
opt = torch.optim.Adam(params, lr=0.05)
idx = torch.arange(batch)
def step():
    opt.zero_grad(); m(transform(image())); (-feats['h'][idx, idx % feats['h'].shape[1]].mean()).backward(); opt.step()
for _ in range(3): step()
ts = []
for _ in range(10 if batch <= 4 else 5):
    t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
ms = sorted(ts)[len(ts) // 2] * 1000
print(json.dumps({'size': size, 'batch': batch, 'lucid': lucid, 'threads': torch.get_num_threads(), 'ms_per_step': ms, 'ms_per_icon': ms / batch}))

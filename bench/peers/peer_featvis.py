"""Feature-visualisation step at batch B (the ../shared/peers script times batch 1 only).
Same network and step as ../shared/peers/peer_torch_cpu.py (MobileNet v1 0.75, random weights, Adam on raw
pixels, objective = mean of one channel of block 12 ~ conv_pw_11), one objective per image in the batch.
Usage: /usr/bin/python3 bench/peers/peer_featvis.py SIZE BATCH [threads] -> JSON on stdout."""
import json, sys, time, torch, torch.nn as nn
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
img = torch.randn(batch, 3, size, size, requires_grad=True)
opt = torch.optim.Adam([img], lr=0.05)
idx = torch.arange(batch)
def step():
    opt.zero_grad(); m(img); (-feats['h'][idx, idx % feats['h'].shape[1]].mean()).backward(); opt.step()
for _ in range(3): step()
ts = []
for _ in range(10 if batch <= 4 else 5):
    t0 = time.perf_counter(); step(); ts.append(time.perf_counter() - t0)
ms = sorted(ts)[len(ts) // 2] * 1000
print(json.dumps({'size': size, 'batch': batch, 'threads': torch.get_num_threads(), 'ms_per_step': ms, 'ms_per_icon': ms / batch}))

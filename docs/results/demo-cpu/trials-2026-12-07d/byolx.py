"""byol's CLI with trial backbones registered (not committed code): convnet variants by channels and extra convs."""
import sys
from torch import nn
from byol.models.backbones import register, Encoder, _scaled


class Net(nn.Module):
    def __init__(self, chans, extra, width, small_images=True):
        super().__init__()
        layers, in_ch = [], 3
        for i, c in enumerate(chans):
            c = _scaled(c, width)
            block = [(in_ch, c)] + [(c, c)] * extra[i]
            for a, b in block:
                layers += [nn.Conv2d(a, b, 3, padding=1, bias=False), nn.BatchNorm2d(b), nn.ReLU(inplace=True)]
            if i < len(chans) - 1:
                layers.append(nn.MaxPool2d(2))
            in_ch = c
        layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.features = nn.Sequential(*layers)
        self.feature_dim = in_ch

    def forward(self, x):
        return self.features(x)


VARIANTS = {
    "convnet_l512": ((32, 64, 128, 512), (0, 0, 0, 0)),
    "convnet_s8": ((16, 64, 128, 256), (0, 0, 0, 0)),
    "convnet_x4": ((32, 64, 128, 256), (0, 0, 0, 1)),
    "convnet_x34": ((32, 64, 128, 256), (0, 0, 1, 1)),
    "convnet_s8x34": ((16, 64, 128, 256), (0, 0, 1, 1)),
}


def _make(chans, extra):
    def build(width: float = 1.0, small_images: bool = True) -> Encoder:
        m = Net(chans, extra, width, small_images)
        return Encoder(m, m.feature_dim)
    return build


for name, (chans, extra) in VARIANTS.items():
    register(name)(_make(chans, extra))

if __name__ == "__main__":
    from byol.cli.__main__ import main
    sys.exit(main())

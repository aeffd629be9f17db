"""torchvision's ResNet18 and ResNet50, written out (torchvision is not installed here), seeded, in eval mode.

Same modules, names and initialisation as ``torchvision.models.resnet18/50(weights=None)``, with non-trivial
BatchNorm running statistics as `benchmarks.torch_side.build` draws them. Each block's residual sum is a
module of its own (``residual``: ``a + b``, which an ONNX export keeps as one Add), so an LRP oracle can swap
it for its own sum module (`benchmarks.lrp_parity`), as zennit's ResNet canonizer does for torchvision's blocks.
"""


def _modules():
    import torch

    nn = torch.nn

    class Add(nn.Module):
        """``a + b``: the residual sum, as a module."""

        def forward(self, a, b):
            return a + b

    class BasicBlock(nn.Module):
        expansion = 1

        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.relu = nn.ReLU(inplace=True)
            self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = _downsample(inplanes, planes, stride, 1)
            self.residual = Add()

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            return self.relu(self.residual(self.bn2(self.conv2(out)), identity))

    class Bottleneck(nn.Module):
        expansion = 4

        def __init__(self, inplanes, planes, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(planes)
            self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(planes)
            self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(planes * 4)
            self.relu = nn.ReLU(inplace=True)
            self.downsample = _downsample(inplanes, planes, stride, 4)
            self.residual = Add()

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            return self.relu(self.residual(self.bn3(self.conv3(out)), identity))

    def _downsample(inplanes, planes, stride, expansion):
        if stride == 1 and inplanes == planes * expansion:
            return None
        return nn.Sequential(nn.Conv2d(inplanes, planes * expansion, 1, stride, bias=False),
                             nn.BatchNorm2d(planes * expansion))

    class ResNet(nn.Module):
        def __init__(self, block, counts):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            inplanes = 64
            for k, (planes, count) in enumerate(zip((64, 128, 256, 512), counts)):
                blocks = []
                for j in range(count):
                    blocks.append(block(inplanes, planes, 2 if k > 0 and j == 0 else 1))
                    inplanes = planes * block.expansion
                setattr(self, f"layer{k + 1}", nn.Sequential(*blocks))
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512 * block.expansion, 1000)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    return torch, ResNet, BasicBlock, Bottleneck


def resnet(depth, seed=0):
    """The seeded ResNet of ``depth`` 18 or 50, eval mode."""
    torch, ResNet, BasicBlock, Bottleneck = _modules()
    nn = torch.nn
    block, counts = {18: (BasicBlock, (2, 2, 2, 2)), 50: (Bottleneck, (3, 4, 6, 3))}[depth]
    torch.manual_seed(seed)
    net = ResNet(block, counts)
    for module in net.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.8, 1.2)
    return net.eval()

"""The LRP tests' independent side: small torch nets with their Keras twins, and zennit 0.5.1's relevance.

zennit imports torchvision, which is not installed here: it is imported with
`benchmarks.torchvision_stand_in` (its torchvision parts are never called).
"""
import keras
import torch

from benchmarks.torchvision_stand_in import stand_in

with stand_in():
    from zennit import attribution as z_attribution
    from zennit import canonizers as z_canonizers
    from zennit import composites as z_composites
    from zennit import layer as z_layer
    from zennit import rules as z_rules
    from zennit import types as z_types

__all__ = ["C", "CLASSES", "COMPOSITES", "PlainAdd", "SIDE", "TARGETS", "torch_nets", "z_canonizers", "z_composites",
           "zennit_relevance"]

C, SIDE, CLASSES = 6, 16, 5
TARGETS = [0, 2, 4]


def torch_nets():
    """A VGG-like and a ResNet-like torch net (BatchNorm with non-trivial statistics) and their Keras twins."""
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(1)

    def batch_norm():
        bn = torch.nn.BatchNorm2d(C)
        with torch.no_grad():
            bn.running_mean.copy_(torch.randn(C, generator=generator) * 0.3)
            bn.running_var.copy_(torch.rand(C, generator=generator) + 0.5)
            bn.weight.copy_(torch.rand(C, generator=generator) + 0.5)
            bn.bias.copy_(torch.randn(C, generator=generator) * 0.2)
        return bn

    class VGG(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.b1, self.r1 = torch.nn.Conv2d(3, C, 3, padding=1), batch_norm(), torch.nn.ReLU()
            self.pool = torch.nn.MaxPool2d(2)
            self.c2, self.b2, self.r2 = torch.nn.Conv2d(C, C, 3, padding=1), batch_norm(), torch.nn.ReLU()
            self.avg, self.flat = torch.nn.AvgPool2d(2), torch.nn.Flatten()
            self.fc1, self.r3, self.fc2 = torch.nn.Linear(C * 16, 8), torch.nn.ReLU(), torch.nn.Linear(8, CLASSES)

        def forward(self, x):
            h = self.avg(self.r2(self.b2(self.c2(self.pool(self.r1(self.b1(self.c1(x))))))))
            return self.fc2(self.r3(self.fc1(self.flat(h.permute(0, 2, 3, 1)))))  # NHWC flattening, as Keras

    class ResNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem, self.bn, self.relu = torch.nn.Conv2d(3, C, 3, padding=1), batch_norm(), torch.nn.ReLU()
            self.pool = torch.nn.MaxPool2d(2)
            self.c1, self.b1, self.r1 = torch.nn.Conv2d(C, C, 3, padding=1, bias=False), batch_norm(), torch.nn.ReLU()
            self.c2, self.b2 = torch.nn.Conv2d(C, C, 3, padding=1, bias=False), batch_norm()
            self.sum, self.r2 = z_layer.Sum(), torch.nn.ReLU()
            self.gap, self.flat = torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten()
            self.fc = torch.nn.Linear(C, CLASSES)

        def forward(self, x):
            h = self.pool(self.relu(self.bn(self.stem(x))))
            branch = self.b2(self.c2(self.r1(self.b1(self.c1(h)))))
            return self.fc(self.flat(self.gap(self.r2(self.sum(torch.stack([h, branch], dim=-1))))))

    def conv(layer, name, bias=True):
        return keras.layers.Conv2D(C, 3, padding="same", use_bias=bias, name=name)(layer)

    def bn(layer, name):
        return keras.layers.BatchNormalization(epsilon=1e-5, name=name)(layer)

    inputs = keras.Input((SIDE, SIDE, 3))
    h = keras.layers.MaxPooling2D(2)(keras.layers.ReLU()(bn(conv(inputs, "c1"), "b1")))
    h = keras.layers.AveragePooling2D(2)(keras.layers.ReLU()(bn(conv(h, "c2"), "b2")))
    h = keras.layers.ReLU()(keras.layers.Dense(8, name="fc1")(keras.layers.Flatten()(h)))
    vgg = keras.Model(inputs, keras.layers.Dense(CLASSES, name="fc2")(h))

    inputs = keras.Input((SIDE, SIDE, 3))
    h = keras.layers.MaxPooling2D(2)(keras.layers.ReLU()(bn(conv(inputs, "stem"), "bn")))
    branch = bn(conv(keras.layers.ReLU()(bn(conv(h, "c1", False), "b1")), "c2", False), "b2")
    h = keras.layers.ReLU()(keras.layers.Add()([h, branch]))
    resnet = keras.Model(inputs, keras.layers.Dense(CLASSES, name="fc")(keras.layers.GlobalAveragePooling2D()(h)))

    nets = {"vgg": (VGG().eval(), vgg), "resnet": (ResNet().eval(), resnet)}
    for net, model in nets.values():
        modules = dict(net.named_modules())
        for layer in model.layers:
            module = modules.get(layer.name)
            if isinstance(module, torch.nn.Conv2d):
                weights = [module.weight.detach().numpy().transpose(2, 3, 1, 0)]
            elif isinstance(module, torch.nn.Linear):
                weights = [module.weight.detach().numpy().T]
            elif isinstance(module, torch.nn.BatchNorm2d):
                weights = [module.weight.detach().numpy(), module.bias.detach().numpy(),
                           module.running_mean.numpy(), module.running_var.numpy()]
            else:
                continue
            if getattr(module, "bias", None) is not None and not isinstance(module, torch.nn.BatchNorm2d):
                weights.append(module.bias.detach().numpy())
            layer.set_weights(weights)
    return nets


def zennit_relevance(net, images, composite, relevance=True):
    """zennit's attribution in float64: relevance starting from the target logit (or, for a gradient composite, 1)."""
    net = net.double()
    x = torch.tensor(images.transpose(0, 3, 1, 2), dtype=torch.float64, requires_grad=True)
    with z_attribution.Gradient(model=net, composite=composite) as attributor:
        out = net(x)
        start = torch.zeros_like(out)
        start[range(len(TARGETS)), TARGETS] = 1.0
        _, result = attributor(x, start * out if relevance else start)
    net.float()
    return result.detach().numpy().transpose(0, 2, 3, 1)


COMPOSITES = {
    "lrp_epsilon_plus": lambda canonizers: z_composites.EpsilonPlus(canonizers=canonizers),
    "lrp_epsilon_plus_flat": lambda canonizers: z_composites.EpsilonPlusFlat(canonizers=canonizers),
    "lrp_epsilon_gamma_box": lambda canonizers: z_composites.EpsilonGammaBox(low=-3.0, high=3.0,
                                                                           canonizers=canonizers),
    "lrp_epsilon_alpha2_beta1": lambda canonizers: z_composites.EpsilonAlpha2Beta1(canonizers=canonizers),
    "lrp_epsilon": lambda canonizers: z_composites.LayerMapComposite(
        [(z_types.Activation, z_rules.Pass()), (z_layer.Sum, z_rules.Norm()), (z_types.AvgPool, z_rules.Norm()),
         (z_types.BatchNorm, z_rules.Pass()), (z_types.Linear, z_rules.Epsilon())], canonizers=canonizers),
}


class PlainAdd(torch.nn.Module):
    """The ResNet-like net of `torch_nets` with its residual sum as ``+`` (what an ONNX export keeps as an Add; the
    net itself sums through zennit's Sum module, for zennit's norm rule)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        n = self.net
        h = n.pool(n.relu(n.bn(n.stem(x))))
        return n.fc(n.flat(n.gap(n.r2(h + n.b2(n.c2(n.r1(n.b1(n.c1(h)))))))))

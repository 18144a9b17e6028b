"""ECO Lite / ECO Full / C3DRes18 in PyTorch, built from a layer-list YAML definition.

Written for ecocpu's reference tests from the model's semantics (shared/reference/README.md):
it is the oracle ecocpu's logits and counts are compared against, so it follows PyTorch's own
modules (Conv2d/3d with bias unless `bias_term: false` or C3DRes18's 3D convolutions, BatchNorm
eps 1e-5, ceil-mode pooling counting padded cells) and the TSN classifier rule. Parameter names
are base_model.<layer id>.<param> and new_fc.<param>.
"""
import os
import subprocess

import torch
import yaml
from torch import nn


def parse_expr(expr):
    out, op, inputs = [part.strip() for part in expr.split("<=")]
    return out, op, [name.strip() for name in inputs.split(",")]


def temporal(value, segments):
    if isinstance(value, str):
        value = value.replace(" ", "")
        if value == "N":
            return segments
        if value.startswith("N/"):
            return segments // int(value[2:])
        return int(value)
    return int(value)


def axes(attrs, scalar, prefix, rank, default, segments):
    if scalar in attrs:
        return (temporal(attrs[scalar], segments),) * rank
    names = ["_d", "_h", "_w"][3 - rank:]
    if all(prefix + n in attrs for n in names):
        return tuple(temporal(attrs[prefix + n], segments) for n in names)
    return (default,) * rank


def build_module(op, attrs, channels, segments):
    """Returns (module, output channels)."""
    if op in ("Convolution", "Conv3d"):
        rank = 3 if op == "Conv3d" else 2
        conv = nn.Conv3d if rank == 3 else nn.Conv2d
        k = axes(attrs, "kernel_size", "kernel", rank, None, segments)
        p = axes(attrs, "pad", "pad", rank, 0, segments)
        s = axes(attrs, "stride", "stride", rank, 1, segments)
        bias = attrs.get("bias_term", True)
        return conv(channels, attrs["num_output"], k, s, p, bias=bias), attrs["num_output"]
    if op in ("BN", "BN3d"):
        bn = nn.BatchNorm3d if op == "BN3d" else nn.BatchNorm2d
        return bn(channels, eps=1e-5), channels
    if op in ("Pooling", "Pooling3d"):
        rank = 3 if op == "Pooling3d" else 2
        k = axes(attrs, "kernel_size", "kernel", rank, None, segments)
        p = axes(attrs, "pad", "pad", rank, 0, segments)
        s = axes(attrs, "stride", "stride", rank, 1, segments)
        if attrs["mode"] == "max":
            pool = nn.MaxPool3d if rank == 3 else nn.MaxPool2d
            return pool(k, s, p, ceil_mode=True), channels
        pool = nn.AvgPool3d if rank == 3 else nn.AvgPool2d
        return pool(k, s, p, ceil_mode=True, count_include_pad=True), channels
    if op == "ReLU":
        return nn.ReLU(), channels
    if op == "Dropout":
        return nn.Dropout(p=attrs["dropout_ratio"]), channels
    if op == "InnerProduct":
        return nn.Linear(channels, attrs["num_output"]), attrs["num_output"]
    raise ValueError("unknown op " + op)


class BaseModel(nn.Module):
    def __init__(self, layers, arch, segments):
        super().__init__()
        self.segments = segments
        self.plan = []  # (id, op, output, inputs)
        channels = {}
        for layer in layers:
            out, op, inputs = parse_expr(layer["expr"])
            attrs = dict(layer.get("attrs") or {})
            if arch == "ECO" and layer["id"] == "global_pool" and op == "Pooling3d":
                attrs["kernel_d"] = segments // 4
            if arch == "C3DRes18" and op == "Conv3d":
                attrs.setdefault("bias_term", False)  # upstream builds them with conv_bias=False
            if op == "Concat":
                channels[out] = sum(channels[name] for name in inputs)
            elif op == "Eltwise":
                channels[out] = channels[inputs[0]]
            else:
                module, channels[out] = build_module(op, attrs, channels.get(inputs[0], 3), segments)
                setattr(self, layer["id"], module)
            self.plan.append((layer["id"], op, out, inputs))
        self.input_name = self.plan[0][3][0]

    def forward(self, x):
        values = {self.input_name: x}
        for layer_id, op, out, inputs in self.plan:
            args = [values[name] for name in inputs]
            if op == "Concat":
                values[out] = torch.cat(args, 1)
            elif op == "Eltwise":
                values[out] = sum(args[1:], args[0])
            elif op == "InnerProduct":
                values[out] = getattr(self, layer_id)(args[0].view(args[0].size(0), -1))
            else:
                x = args[0]
                if op in ("Conv3d", "BN3d", "Pooling3d") and x.dim() == 4:
                    # (N*T, C, H, W) -> (N, T, C, H, W) -> (N, C, T, H, W)
                    x = x.view((-1, self.segments) + x.size()[1:]).transpose(1, 2)
                values[out] = getattr(self, layer_id)(x)
        return values[self.plan[-1][2]]


class TSN(nn.Module):
    """The wrapper ECO is trained and used in: with dropout the last layer becomes a Dropout and
    new_fc classifies; without, the last layer itself classifies."""

    def __init__(self, definition_path, arch, segments, classes, dropout=0.5):
        super().__init__()
        with open(definition_path) as f:
            layers = yaml.safe_load(f)["layers"]
        self.base_model = BaseModel(layers, arch, segments)
        last = layers[-1]["id"]
        features = getattr(self.base_model, last).in_features
        if dropout > 0:
            setattr(self.base_model, last, nn.Dropout(p=dropout))
            self.new_fc = nn.Linear(features, classes)
        else:
            setattr(self.base_model, last, nn.Linear(features, classes))
            self.new_fc = None

    def forward(self, frames):
        out = self.base_model(frames.view((-1, 3) + frames.size()[-2:]))
        return self.new_fc(out) if self.new_fc is not None else out


def use_onednn_conv3d(model):
    """Runs every Conv3d through PyTorch's own oneDNN convolution: Debian's PyTorch computes
    conv3d with a generic BLAS, 25x slower, which made writing the reference data take minutes.
    Same modules, parameters and arithmetic (float32 products, float32 sums); thop, which counts
    by module type, is unaffected."""
    def forward(conv):
        return lambda x: torch.mkldnn_convolution(x.contiguous(), conv.weight, conv.bias, conv.padding,
                                                  conv.stride, conv.dilation, conv.groups)
    if not torch.backends.mkldnn.is_available():
        return model  # slower, same result
    for module in model.modules():
        if isinstance(module, nn.Conv3d):
            module.forward = forward(module)
    return model


def randomize(model, seed):
    """Seeded weights that keep activations in a sensible range, and BatchNorm statistics that
    are not the identity, so every parameter matters to the logits."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if name.endswith("num_batches_tracked"):
                continue
            if name.endswith("weight") and tensor.dim() == 2:
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * 0.01)
            elif name.endswith("weight") and tensor.dim() > 2:
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            elif name.endswith("weight"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) + 0.5)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 1.5 + 0.5)
            else:
                tensor.copy_(torch.rand(tensor.shape, generator=gen) * 0.2 - 0.1)
    return model


def write_definitions(ecocpu, folder):
    """ECO.yaml, ECOfull.yaml and C3DRes18.yaml from `ecocpu definition` into `folder`: the models
    this tier builds are ecocpu's own definitions, which the upstream comparison
    (test_definitions.cpp) proves equal to upstream's files where those are at hand."""
    os.makedirs(folder, exist_ok=True)
    for arch in ("ECO", "ECOfull", "C3DRes18"):
        text = subprocess.run([ecocpu, "definition", "--arch", arch], capture_output=True, text=True,
                              check=True).stdout
        with open(os.path.join(folder, arch + ".yaml"), "w") as f:
            f.write(text)
    return folder

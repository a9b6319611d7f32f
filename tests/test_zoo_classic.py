"""The classic CNN families: golden counts the shared walk cannot check, and what makes each faithful."""
import logging

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from zoo.densenet import DenseLayer, Transition
from zoo.googlenet import Inception
from zoo.layers import SqueezeExcite, aux_avg_pool
from zoo.resnet import BasicBlock, Bottleneck
from zoo.xception import SeparableConv


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _count(name: str, **kwargs) -> int:
    with torch.device("meta"):  # counting needs no memory or init time
        return _n_params(zoo.create_model(name, **kwargs))


def _convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


@pytest.mark.parametrize("name, count", [
    ("nin_cifar", 966_986), ("densenet40", 1_019_722), ("densenet_bc_100", 769_162)])
def test_golden_counts_at_10_classes(name, count):
    assert _count(name, num_classes=10) == count


def test_resnext29_8x64d_has_the_papers_34_4m_params():
    assert round(_count("resnext29_8x64d", num_classes=10) / 1e6, 1) == 34.4


@pytest.mark.parametrize("name, trunk_count, aux_attr", [
    ("googlenet", 6_998_552, "aux_heads"), ("inception_v3", 23_834_568, "aux_head")])
def test_golden_counts_without_auxiliary_heads(name, trunk_count, aux_attr):
    assert _count(name, aux_logits=False) == trunk_count
    with torch.device("meta"):
        model = zoo.create_model(name)
    assert _n_params(model) - _n_params(getattr(model, aux_attr)) == trunk_count


@pytest.mark.parametrize("name, count", [  # torchvision's vgg*_bn counts (convs keep their biases)
    ("vgg11_bn", 132_868_840), ("vgg13_bn", 133_053_736), ("vgg16_bn", 138_365_992), ("vgg19_bn", 143_678_248)])
def test_vgg_bn_counts(name, count):
    assert _count(name) == count


@pytest.mark.parametrize("name, n_convs", [("vgg11", 8), ("vgg13", 10), ("vgg16", 13), ("vgg19", 16)])
def test_vgg_depth_counts_weight_layers(name, n_convs):
    with torch.device("meta"):
        model = zoo.create_model(name)
    convs = _convs(model)
    assert len(convs) == n_convs and all(c.kernel_size == (3, 3) for c in convs)


@pytest.mark.parametrize("alias, name", [
    ("cnn", "lenet5"), ("vggnet", "vgg11"), ("nin", "nin_cifar"), ("resnext", "resnext50_32x4d"),
    ("senet", "se_resnet18"), ("densenet", "densenet40"), ("inceptionv3", "inception_v3"),
    ("darknet", "darknet53"), ("googlenet", "googlenet"), ("xception", "xception")])
def test_seed_aliases(alias, name):
    assert zoo.resolve_name(alias) == name


def test_resnet50_v1_puts_the_stride_on_the_1x1_and_costs_fewer_macs():
    fvcore = pytest.importorskip("fvcore.nn")
    logging.disable(logging.WARNING)
    x = torch.randn(1, 3, 224, 224)
    gmacs = {}
    for name in ("resnet50", "resnet50_v1"):
        model = zoo.create_model(name).eval()
        first_down = model.stages[1][0]
        strided = first_down.conv1[0] if name == "resnet50_v1" else first_down.conv2[0]
        assert strided.stride == (2, 2)
        analysis = fvcore.FlopCountAnalysis(model, x)
        analysis.unsupported_ops_warnings(False)
        gmacs[name] = analysis.total() / 1e9
    logging.disable(logging.NOTSET)
    assert gmacs["resnet50"] == pytest.approx(4.11, rel=0.02)
    assert gmacs["resnet50_v1"] == pytest.approx(3.88, rel=0.02)


def test_googlenet_aux_outputs_in_training_only():
    model = zoo.create_model("googlenet", num_classes=5, img_size=64)
    x = torch.randn(2, 3, 64, 64)
    logits, aux = model.train()(x)
    assert logits.shape == (2, 5) and len(aux) == 2 and all(a.shape == (2, 5) for a in aux)
    with torch.no_grad():
        assert isinstance(model.eval()(x), torch.Tensor)
    assert isinstance(zoo.create_model("googlenet", aux_logits=False, num_classes=5).train()(x), torch.Tensor)


def test_googlenet_uses_5x5_convs_and_no_batchnorm():
    with torch.device("meta"):
        model = zoo.create_model("googlenet")
    modules = [m for m in model.modules() if isinstance(m, Inception)]
    assert len(modules) == 9
    assert all(m.branch5x5[1][0].kernel_size == (5, 5) for m in modules)  # torchvision has 3×3 here
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert sum(isinstance(m, nn.LocalResponseNorm) for m in model.stem) == 2


def test_inception_v3_aux_head_in_training_only():
    model = zoo.create_model("inception_v3", num_classes=4, img_size=75)
    x = torch.randn(2, 3, 75, 75)
    logits, aux = model.train()(x)
    assert logits.shape == (2, 4) and len(aux) == 1 and aux[0].shape == (2, 4)
    assert zoo.get_model_info("inception_v3").aux_loss_weights == (0.4,)
    with torch.no_grad():
        assert model.eval()(x).shape == (2, 4)


@pytest.mark.parametrize("size, grid", [(14, 4), (17, 5)])
def test_aux_pool_is_the_papers_5x5_stride_3_pool_at_native_size(size, grid):
    x = torch.randn(1, 2, size, size)
    torch.testing.assert_close(aux_avg_pool(x, grid), F.avg_pool2d(x, 5, 3))
    assert aux_avg_pool(torch.randn(1, 2, 3, 3), grid).shape[-2:] == (grid, grid)
    assert aux_avg_pool(torch.randn(1, 2, 40, 40), grid).shape[-2:] == (grid, grid)


@pytest.mark.parametrize("block", [BasicBlock(16, 32, stride=2, se_ratio=1 / 16),
                                   Bottleneck(64, 16, stride=2, se_ratio=1 / 16)])
def test_se_gate_acts_before_the_residual_addition(block):
    block.eval()
    x = torch.randn(2, block.shortcut[0].in_channels, 8, 8)
    with torch.no_grad():
        nn.init.zeros_(block.se.expand.weight)
        nn.init.constant_(block.se.expand.bias, -1e4)  # sigmoid gate = 0: the residual branch is shut
        torch.testing.assert_close(block(x), F.relu(block.shortcut(x)))


@pytest.mark.parametrize("name,options", [("resnet50", {}), ("se_resnet18", {}),
                                          ("se_resnet18", {"act_before_se": True, "stem_pool": "ceil"})])
def test_the_in_place_residual_sum_trains_like_the_out_of_place_one(name, options):
    """The blocks add the shortcut into the branch's output in place; autograd would refuse it where the branch's
    last op needs its own output for backward, and the gradients must equal those of a plain sum."""
    torch.manual_seed(0)
    model = zoo.create_model(name, num_classes=10, in_chans=3, img_size=32, **options).double()
    x = torch.randn(2, 3, 32, 32, dtype=torch.float64)
    model(x).square().sum().backward()
    in_place = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()

    def summed_out_of_place(block, x):
        branch = block.conv2(block.conv1(x))
        if isinstance(block, Bottleneck):
            branch = block.conv3(branch)
        return block.act(block.se(branch) + block.shortcut(x))

    for block in model.modules():
        if isinstance(block, (BasicBlock, Bottleneck)):
            block.forward = lambda x, block=block: summed_out_of_place(block, x)
    model(x).square().sum().backward()
    for a, b in zip(in_place, (p.grad for p in model.parameters())):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_a_relu_before_an_se_gate_needs_the_gate():
    with pytest.raises(ValueError, match="act_before_se .* needs an SE gate"):
        BasicBlock(16, 16, act_before_se=True)


def test_se_resnet50_has_an_r16_gate_with_biases_in_every_block():
    with torch.device("meta"):
        model = zoo.create_model("se_resnet50")
    gates = [m for m in model.modules() if isinstance(m, SqueezeExcite)]
    assert len(gates) == 16
    for gate in gates:
        assert gate.reduce.in_channels == 16 * gate.reduce.out_channels
        assert gate.reduce.bias is not None and gate.expand.bias is not None
    assert model.stages[1][0].conv1[0].stride == (2, 2)  # the paper's Caffe stride placement (3.87 GMACs)


@pytest.mark.parametrize("name, groups, first_width", [("resnext50_32x4d", 32, 128), ("resnext29_8x64d", 8, 512)])
def test_resnext_grouped_convs(name, groups, first_width):
    with torch.device("meta"):
        model = zoo.create_model(name)
    bottlenecks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert all(b.conv2[0].groups == groups for b in bottlenecks)
    assert bottlenecks[0].conv2[0].in_channels == first_width
    assert all(b.conv1[0].groups == 1 and b.conv3[0].groups == 1 for b in bottlenecks)


@pytest.mark.parametrize("name, stem, growth, layers, compression", [
    ("densenet40", 16, 12, 12, 1.0), ("densenet_bc_100", 24, 12, 16, 0.5)])
def test_densenet_growth_and_compression(name, stem, growth, layers, compression):
    model = zoo.create_model(name, num_classes=10).eval()
    seen = []
    for module in model.modules():
        if isinstance(module, (DenseLayer, Transition)):
            module.register_forward_hook(lambda m, inp, out: seen.append((type(m), inp[0].shape[1], out.shape[1])))
    with torch.no_grad():
        model(torch.randn(1, 3, 32, 32))
    dense = [(i, o) for kind, i, o in seen if kind is DenseLayer]
    assert len(dense) == 3 * layers and all(o == i + growth for i, o in dense)
    assert dense[0][0] == stem and dense[layers - 1][1] == stem + layers * growth
    transitions = [(i, o) for kind, i, o in seen if kind is Transition]
    assert len(transitions) == 2 and all(o == int(i * compression) for i, o in transitions)


def test_nin_classifies_maps_then_pools():
    model = zoo.create_model("nin_cifar", num_classes=10).eval()
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        features = model.forward_features(x)
        assert features.shape == (2, 192, 8, 8)  # Caffe's ceil-mode pools: 32 → 16 → 8
        maps = model.head.fc(features)
        torch.testing.assert_close(model(x), maps.mean((2, 3)))
        assert maps.shape == (2, 10, 8, 8) and (maps >= 0).all()


def test_lenet5_takes_28px_digits_and_other_sizes():
    model = zoo.create_model("cnn", num_classes=10, in_chans=1).eval()
    with torch.no_grad():
        for size in (12, 28, 40):
            assert model(torch.randn(1, 1, size, size)).shape == (1, 10)
    with pytest.raises(zoo.ModelConfigError, match="smallest accepted size is 12"):
        zoo.create_model("lenet5", img_size=11)


def test_alexnet_tv_is_single_tower_without_lrn():
    with torch.device("meta"):
        model = zoo.create_model("alexnet_tv")
    assert [c.out_channels for c in _convs(model)] == [64, 192, 384, 256, 256]
    assert all(c.groups == 1 for c in _convs(model))
    assert not any(isinstance(m, nn.LocalResponseNorm) for m in model.modules())


def test_xception_has_36_conv_layers_with_linear_separable_convs():
    with torch.device("meta"):
        model = zoo.create_model("xception")
    separable = [m for m in model.modules() if isinstance(m, SeparableConv)]
    assert 2 + len(separable) == 36
    assert all(s[0].groups == s[0].in_channels and s[1].kernel_size == (1, 1) for s in separable)


def test_darknet53_has_53_convs_and_leaky_relu():
    with torch.device("meta"):
        model = zoo.create_model("darknet53")
    assert len(_convs(model)) + 1 == 53  # 52 convs + the classifier
    slopes = {m.negative_slope for m in model.modules() if isinstance(m, nn.LeakyReLU)}
    assert slopes == {0.1}

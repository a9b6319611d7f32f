"""Blocks written once and shared by every model family."""
from zoo.layers.activations import KeLU, get_act_layer, kelu, raised_cosine_cdf
from zoo.layers.cct_block import CCTBlock, init_cct_weights
from zoo.layers.classifier import ClassifierHead, ImageClassifier
from zoo.layers.cnn_heads import ConvPoolHead, aux_avg_pool
from zoo.layers.conv import ConvNormAct, conv_relu, he_init_conv_bn, make_divisible
from zoo.layers.drop import DropPath, drop_path, linear_drop_path_rates
from zoo.layers.mbconv import MBConv
from zoo.layers.nf import NF_ACT_GAMMAS, ScaledActivation, WSConv2d
from zoo.layers.patch import PatchEmbed, check_fixed_input_size, check_patch_grid, resample_pos_embed, sincos_1d
from zoo.layers.patch_mlp import PatchMlpClassifier
from zoo.layers.squeeze_excite import SqueezeExcite
from zoo.layers.transformer import Attention, LayerScale, Mlp, TransformerBlock

__all__ = ["Attention", "CCTBlock", "ClassifierHead", "ConvNormAct", "he_init_conv_bn", "ConvPoolHead", "DropPath", "ImageClassifier",
           "KeLU", "LayerScale", "MBConv", "Mlp", "NF_ACT_GAMMAS", "PatchEmbed", "PatchMlpClassifier", "ScaledActivation", "SqueezeExcite",
           "TransformerBlock", "WSConv2d", "aux_avg_pool", "check_fixed_input_size", "check_patch_grid", "conv_relu", "drop_path",
           "get_act_layer", "init_cct_weights", "kelu", "linear_drop_path_rates", "make_divisible",
           "raised_cosine_cdf", "resample_pos_embed", "sincos_1d"]

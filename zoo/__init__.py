"""A model zoo of image classifiers, each built from its paper.

    import zoo
    model = zoo.create_model("resnet18", num_classes=10, in_chans=1, img_size=32)
    model, preprocess, spec = zoo.load_model("results/runs/<run-id>")   # a trained model, ready (zoo/saved.py)
"""
from zoo.model_info import ModelConfigError, ModelInfo
from zoo.registry import create_model, get_model_info, list_models, register_model, resolve_name
from zoo.saved import LoadedModel, ModelSpec, SavedModelError, load_model

# Importing a family module registers its models; importing external registers the tv: and timm: names.
from zoo import (alexnet, cct, darknet, densenet, efficientnet, external, gmlp, googlenet, inception,  # noqa: E402,F401
                 learngene, lenet, mlp_mixer, mobilenet, nfnet, nin, pretrained, resmlp, resnet, sdpnet, shufflenet,
                 squeezenet, vgg, vit, xception)

__all__ = ["LoadedModel", "ModelConfigError", "ModelInfo", "ModelSpec", "SavedModelError", "create_model",
           "get_model_info", "list_models", "load_model", "register_model", "resolve_name"]

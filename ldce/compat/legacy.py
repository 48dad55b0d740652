"""Reading ``ldce predict`` configs and flags of ldce 0.1 (deprecated; accepted until ldce 0.3).

ldce 0.1 configs named the module by ``class_path`` and gave LDCE's hyperparameters and speed
switches as flat arguments of the module; classifier loaders took the preprocessing fields flat;
several classes lived at other paths. :func:`migrate_config` rewrites such a config into the current
form and :func:`migrate_argv` does the same for command-line flags; each returns what it changed, so
that the caller can warn once, naming every old key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ldce.classifiers.wrapper import Preprocessing

MODULE_CLASSES = (
    "ldce.module.CounterfactualModule",
    "ldce.runner.CounterfactualModule",
    "ldce.runner.module.CounterfactualModule",
)
METHOD_FIELDS_0_1 = (
    "strength",
    "ddim_steps",
    "ddim_eta",
    "scale",
    "classifier_lambda",
    "dist_lambda",
    "deg_cone_projection",
    "lp_custom",
    "guidance",
    "cone_projection_type",
    "consensus_chunk_size",
    "enforce_same_norms",
    "batched_vjp",
)
SPEEDUP_FIELDS_0_1 = ("channels_last", "attention", "gradient_checkpointing", "compile")
GROUPS = {**dict.fromkeys(METHOD_FIELDS_0_1, "method"), **dict.fromkeys(SPEEDUP_FIELDS_0_1, "speedups")}
"""Flat module argument of ldce 0.1 → the argument group that holds it now (only those 0.1 had: a later
option given flat is an unknown key, answered with the closest known one)."""
ORIGINAL_NAMES = {"backprop_diffusion": "backprop_noise_model"}
"""The original project's ``sampler`` option → the :class:`LDCEConfig` field that took another name."""
PREPROCESSING_FIELDS = {f.name for f in dataclasses.fields(Preprocessing)}
RENAMED = {
    "ldce.backbones.pretrained.": "ldce.backbones.paper.",
    "ldce.paper_classifiers.": "ldce.classifiers.paper.",
    "ldce.zero_shot.": "ldce.classifiers.zero_shot.",
    "ldce.feature_extractors.": "ldce.classifiers.features.",
    "ldce.backbones.class_conditional.ClassConditionalLDM.tiny": "ldce.testing.models.tiny_class_conditional_ldm",
}
"""Old class-path prefix → new one."""
OLD_LOADERS = {
    "timm_classifier": {"name": "timm", "weights_path": "checkpoint"},
    "torchvision_classifier": {"name": "torchvision", "weights_path": "checkpoint"},
    "module_classifier": {"weights_path": "checkpoint"},
}
"""Classifier loaders of ldce ≤ 0.2 → the renamed arguments of :func:`ldce.classifiers.classifier`."""
LOADERS_WITH_PREPROCESSING = (
    *OLD_LOADERS,
    "ldce.classifiers.classifier",
    "steex_densenet",
    "dino_linear_classifier",
    "open_clip_zero_shot",
)


def _renamed(class_path: str) -> str:
    for old, new in RENAMED.items():
        if class_path.startswith(old):
            return new + class_path[len(old) :]
    return class_path


def _one_loader(value: dict[str, Any], changes: list[str], where: str) -> dict[str, Any]:
    """An old classifier loader (``timm_classifier`` …) as ``ldce.classifiers.classifier`` with its arguments."""
    name = value["class_path"].rpartition(".")[2]
    if not value["class_path"].startswith("ldce.classifiers") or name not in OLD_LOADERS:
        return value
    init_args = dict(value.get("init_args") or {})
    moved = {old: new for old, new in OLD_LOADERS[name].items() if old in init_args}
    changes.append(f"{where}.class_path {value['class_path']} (now ldce.classifiers.classifier)")
    changes += [f"{where}.init_args.{old} (now {where}.init_args.{new})" for old, new in moved.items()]
    init_args = {moved.get(key, key): item for key, item in init_args.items()}
    return {**value, "class_path": "ldce.classifiers.classifier", "init_args": init_args}


def _migrate_classes(value: Any, changes: list[str], where: str) -> Any:
    """Rename old class paths and group flat preprocessing fields, everywhere below ``value``."""
    if isinstance(value, list):
        return [_migrate_classes(item, changes, f"{where}[{i}]") for i, item in enumerate(value)]
    if not isinstance(value, dict):
        return value
    value = {key: _migrate_classes(item, changes, f"{where}.{key}") for key, item in value.items()}
    class_path = value.get("class_path")
    if isinstance(class_path, str):
        value = _one_loader(value, changes, where)
        if _renamed(class_path) != class_path:
            changes.append(f"{where}.class_path {class_path} (now {_renamed(class_path)})")
            value["class_path"] = _renamed(class_path)
        init_args = value.get("init_args")
        if class_path.endswith(LOADERS_WITH_PREPROCESSING) and isinstance(init_args, dict):
            flat = sorted(PREPROCESSING_FIELDS & set(init_args))
            if flat:
                changes += [f"{where}.init_args.{k} (now {where}.init_args.preprocessing.{k})" for k in flat]
                group = {k: init_args.pop(k) for k in flat}
                init_args["preprocessing"] = {**(init_args.get("preprocessing") or {}), **group}
    return value


def _original_names(model: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """``model`` with the original's option names, flat or under ``method``, renamed to ldce's fields."""
    model = dict(model)
    for old, new in ORIGINAL_NAMES.items():
        method = model["method"] if isinstance(model.get("method"), dict) else {}
        for where, holder in (("model", model), ("model.method", method)):
            if old in holder:
                changes.append(f"{where}.{old} (now model.method.{new})")
                model["method"] = {**{k: v for k, v in method.items() if k != old}, new: holder[old]}
        model.pop(old, None)
    return model


def migrate_config(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """An ``ldce predict`` config in the current form, and the old keys it had (empty: nothing changed).
    Raises ``ValueError`` when ``config`` is not a mapping."""
    if not isinstance(config, dict):
        raise ValueError(f"a config is a mapping of sections (model, data, trainer, …), got a {type(config).__name__}")
    changes: list[str] = []
    model = config.get("model")
    if isinstance(model, dict) and model.get("class_path") in MODULE_CLASSES:
        changes.append(f"model.class_path {model['class_path']} (now implied)")
        model = dict(model.get("init_args") or {})
    elif isinstance(model, dict) and set(model) == {"init_args"}:  # a partial override file
        changes.append("model.init_args (now model)")
        model = dict(model["init_args"] or {})
    if isinstance(model, dict):
        model = _original_names(model, changes)
        for key in [k for k in model if k in GROUPS]:
            changes.append(f"model.{key} (now model.{GROUPS[key]}.{key})")
            model.setdefault(GROUPS[key], {})[key] = model.pop(key)
        config = {**config, "model": model}
    return _migrate_classes(config, changes, "config"), changes


def _migrate_flag(name: str) -> str:
    """``--model.init_args.X`` → ``--model.X``; ``--model.strength`` → ``--model.method.strength``;
    ``--model[.method].backprop_diffusion`` (the original's name) → ``--model.method.backprop_noise_model``;
    ``--model.classifier.init_args.crop`` → ``--model.classifier.init_args.preprocessing.crop``."""
    parts = name.removeprefix("--").split(".")
    if parts[:2] == ["model", "init_args"]:
        parts = ["model", *parts[2:]]
    if len(parts) == 2 and parts[0] == "model" and parts[1] in ORIGINAL_NAMES:
        parts = ["model", "method", parts[1]]
    if len(parts) == 3 and parts[:2] == ["model", "method"]:
        parts[2] = ORIGINAL_NAMES.get(parts[2], parts[2])
    if len(parts) == 2 and parts[0] == "model" and parts[1] in GROUPS:
        parts = ["model", GROUPS[parts[1]], parts[1]]
    if parts[:3] == ["model", "classifier", "init_args"] and len(parts) == 4 and parts[3] in PREPROCESSING_FIELDS:
        parts = [*parts[:3], "preprocessing", parts[3]]
    return "--" + ".".join(parts)


def migrate_argv(argv: list[str]) -> tuple[list[str], list[str]]:
    """Command-line flags in the current form (old class paths given as values renamed too), and the
    old flags (empty: nothing changed)."""
    migrated, changes = [], []
    for arg in argv:
        name, equals, value = arg.partition("=")
        new = _migrate_flag(name) if name.startswith("--model.") else _renamed(arg) if not equals else name
        value = _renamed(value) if equals else value
        if new + equals + value != arg:
            changes.append(f"{arg} (now {new + equals + value})")
        migrated.append(new + equals + value)
    return migrated, changes

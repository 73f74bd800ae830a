"""The package's face: `import fromscratch` is light, and its main names are one import away."""

import subprocess
import sys

import pytest

import fromscratch

REQUIRED = ["GPT", "GPTConfig", "CharTokenizer", "BPETokenizer", "WordPieceTokenizer",
            "SentenceEncoder", "ViT", "UNet", "AutoencoderKL", "StableDiffusion", "TrainConfig",
            "train"]


def run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_importing_the_package_imports_no_torch():
    assert run("import sys, fromscratch; print('torch' in sys.modules)") == "False"


def test_the_face_names_every_main_class_and_they_load_without_reference_libraries():
    assert set(REQUIRED) <= set(fromscratch.__all__)
    code = ("import sys, fromscratch\n"
            f"for name in {REQUIRED!r}: getattr(fromscratch, name)\n"
            "print(sorted(m for m in ('transformers', 'diffusers', 'sentence_transformers',"
            " 'peft') if m in sys.modules))")
    assert run(code) == "[]"


@pytest.mark.parametrize("name", REQUIRED)
def test_each_name_is_the_object_its_module_defines(name):
    import importlib

    value = getattr(fromscratch, name)
    module = importlib.import_module(value.__module__)
    assert getattr(module, name) is value
    assert value.__module__.startswith("fromscratch.")


def test_the_modern_decoder_is_on_the_face_without_reference_libraries():
    code = ("import sys, fromscratch\n"
            "from fromscratch.language.llama import Llama, LlamaConfig\n"
            "print(fromscratch.Llama is Llama, fromscratch.LlamaConfig is LlamaConfig,"
            " 'transformers' in sys.modules)")
    assert run(code) == "True True False"


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        fromscratch.Nope  # noqa: B018

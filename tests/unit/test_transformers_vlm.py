"""TransformersVLMBackend on a tiny, randomly initialised LLaVA built offline inside the test (no download)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from PIL import Image  # noqa: E402

from rsrt_utils.captioning.backend import CaptionRequest  # noqa: E402
from rsrt_utils.captioning.transformers_vlm import ModelLoadError, TransformersVLMBackend  # noqa: E402
from tests.fakes.bad_images import plant_bad_files  # noqa: E402

SPECIALS = ["<unk>", "<pad>", "<s>", "</s>", "<image>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] | upper }}: "
    "{% for item in message['content'] %}{% if item['type'] == 'image' %}<image> "
    "{% elif item['type'] == 'text' %}{{ item['text'] }}{% endif %}{% endfor %}{% endfor %}"
    "{% if add_generation_prompt %} ASSISTANT:{% endif %}"
)
MAX_NEW_TOKENS = 6


def _prompt_words() -> list[str]:
    from tokenizers.pre_tokenizers import Whitespace

    from rsrt_utils.captioning import prompts

    texts = [prompts.prompt_for("variants", s) + prompts.prompt_for("image_query", s) for s in (False, True)]
    words = {piece for text in texts for piece, _ in Whitespace().pre_tokenize_str(text)}
    return sorted(words | {"USER", ":", "ASSISTANT", "road", "river", "trees", "buildings"})


def _tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {token: i for i, token in enumerate(SPECIALS + [w for w in _prompt_words() if w not in SPECIALS])}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split("<image>", "isolated"), pre_tokenizers.Whitespace()])
    core.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                        eos_token="</s>", extra_special_tokens={"image_token": "<image>"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["<image>"]})
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def tiny_vlm_dir(tmp_path_factory):
    """Save a tiny LLaVA (CLIP vision tower 16x16 px, patch 8 -> 4 image tokens; 1-layer Llama) + processor."""
    from transformers import (
        CLIPImageProcessorPil,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    tokenizer = _tokenizer()
    image_processor = CLIPImageProcessorPil(size={"shortest_edge": 16}, crop_size={"height": 16, "width": 16})
    processor = LlavaProcessor(image_processor=image_processor, tokenizer=tokenizer, patch_size=8,
                               vision_feature_select_strategy="default", chat_template=CHAT_TEMPLATE,
                               num_additional_image_tokens=1)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                              image_size=16, patch_size=8, projection_dim=16)
    text = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                       num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
                       eos_token_id=tokenizer.eos_token_id)
    config = LlavaConfig(vision_config=vision, text_config=text, image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
                         vision_feature_select_strategy="default", vision_feature_layer=-1)
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(config).eval()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    directory = tmp_path_factory.mktemp("tiny-llava")
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def backend(tiny_vlm_dir):
    return TransformersVLMBackend(str(tiny_vlm_dir), device="cpu", dtype="float32", batch_size=3, max_new_tokens=MAX_NEW_TOKENS)


@pytest.fixture(scope="module")
def requests(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    out = []
    for i in range(3):
        path = folder / f"img_{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(24, 24, 3), dtype=np.uint8)).save(path)
        out.append(CaptionRequest(image_id=f"img_{i}", image_path=path))
    return out


def test_chat_template_puts_image_tokens_and_prompt_into_the_input(backend, requests):
    from rsrt_utils.captioning.prompts import prompt_for

    inputs = backend.build_inputs(requests[:1], "image_query")
    ids = inputs["input_ids"][0].tolist()
    image_id = backend.processor.tokenizer.convert_tokens_to_ids("<image>")
    assert ids.count(image_id) == 4  # 2x2 patches, CLS dropped by the "default" strategy
    decoded = backend.processor.tokenizer.decode(ids, skip_special_tokens=True)
    assert decoded.startswith("USER :")
    assert decoded.rstrip().endswith("ASSISTANT :")
    prompt_words = prompt_for("image_query").split()[:6]
    assert " ".join(w.strip(".,") for w in prompt_words[:3]) in decoded
    assert "pixel_values" in inputs and tuple(inputs["pixel_values"].shape[-2:]) == (16, 16)


def test_padding_is_on_the_left(backend):
    assert backend.processor.tokenizer.padding_side == "left"


def test_answer_holds_only_new_tokens(backend, requests):
    answer = backend.answer_batch(requests[:1], "variants")[0]
    inputs = backend.build_inputs(requests[:1], "variants")
    prompt_length = inputs["input_ids"].shape[1]
    assert answer.usage["prompt_tokens"] == prompt_length > 100
    assert 1 <= answer.usage["completion_tokens"] <= MAX_NEW_TOKENS
    with torch.inference_mode():
        full = backend.network.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False,
                                        pad_token_id=backend.processor.tokenizer.pad_token_id)
    assert full[0, :prompt_length].tolist() == inputs["input_ids"][0].tolist()  # generate echoes the prompt ...
    new = backend._cut_at_eos(full[0, prompt_length:].tolist())
    expected = backend.processor.tokenizer.decode(new, skip_special_tokens=True).strip()
    assert answer.raw_text == expected  # ... and the backend returns only what follows it
    assert len(answer.raw_text.split()) <= MAX_NEW_TOKENS
    assert "USER" not in answer.raw_text and "satellite or aerial image" not in answer.raw_text


def test_batch_of_three_equals_one_by_one(backend, requests):
    batched = backend.answer_batch(requests, "image_query")
    single = [backend.answer_batch([r], "image_query")[0] for r in requests]
    assert [a.raw_text for a in batched] == [a.raw_text for a in single]
    assert [a.usage for a in batched] == [a.usage for a in single]


def test_a_bad_file_in_a_batch_fails_alone(backend, requests, tmp_path):
    """Issue 18: the images of a batch are read one by one; a bad file is its own error answer."""
    plant_bad_files(tmp_path)
    bad = [CaptionRequest(image_id=name, image_path=tmp_path / name) for name in ("corrupt.jpg", "bomb.png")]
    answers = backend.answer_batch([bad[0], *requests, bad[1]], "image_query")
    assert [a.error is None for a in answers] == [False, True, True, True, False]
    assert "corrupt.jpg" in answers[0].error and "limit" in answers[-1].error
    assert [a.raw_text for a in answers[1:4]] == [a.raw_text for a in backend.answer_batch(requests, "image_query")]


def test_settings_and_prompt_version_are_recorded(backend):
    from rsrt_utils.captioning.prompts import PROMPT_VERSION

    assert backend.name == "transformers" and backend.prompt_version == PROMPT_VERSION
    assert backend.settings["max_new_tokens"] == MAX_NEW_TOKENS and backend.settings["decoding"] == "greedy"


def test_unknown_mode_is_rejected(backend, requests):
    with pytest.raises(ValueError, match="mode 'caption' is not known"):
        backend.answer_batch(requests[:1], "caption")


def test_missing_model_names_the_model_and_the_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    missing = "no-such-org/no-such-vlm-123"
    with pytest.raises(ModelLoadError) as info:
        TransformersVLMBackend(missing, device="cpu")
    message = str(info.value)
    assert missing in message and "local directory" in message and "HF_HUB_OFFLINE" in message

"""A tiny word-level tokenizer and GPT-2 for the language-model tests: built in memory in
milliseconds, nothing downloaded (the tests run with HF_HUB_OFFLINE=1)."""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("the movie was good bad great awful fine and but a film plot acting i loved hated it is very not "
         "really boring fun happy sad story ending actors best worst this that so quite").split()


def tiny_tokenizer(pad: bool = True, words: tuple[str, ...] | list[str] = WORDS):
    """Word-level tokenizer: ids 0-2 are <pad>, <eos>, <unk>, then `words`. `pad=False` gives one
    without a pad token, as GPT-2's own tokenizer is."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(dict.fromkeys(words))}}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    kwargs = {"pad_token": "<pad>"} if pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", unk_token="<unk>", **kwargs)


def tiny_model(tokenizer, seed: int = 0, n_positions: int = 64, n_embd: int = 32, n_layer: int = 2,
               activation_function: str = "gelu_new"):
    """A randomly initialised 2-layer GPT-2 over `tokenizer`'s vocabulary."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=2,
                        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id, activation_function=activation_function)
    return GPT2LMHeadModel(config).eval()


def save_tiny_lm(path: Path, seed: int = 0, pad: bool = True, **model_kwargs) -> Path:
    """Tokenizer and model saved with save_pretrained into `path`, as `--model PATH` expects."""
    tokenizer = tiny_tokenizer(pad=pad)
    tiny_model(tokenizer, seed=seed, **model_kwargs).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
